from vjepa_tune.cli import main

raise SystemExit(main())
