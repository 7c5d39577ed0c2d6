"""The run folder: the only code that knows its layout, writes its files and reads them back.

    config.yaml          the full resolved configuration (`train --config RUN_DIR/config.yaml` repeats the run)
    splits.json          the exact videos of each split, with each video's size and fingerprint
    checkpoint/state.pt  the state after the last finished epoch (trainable weights, optimizer, scheduler, RNG
                         states, epoch, step, history), replaced atomically each epoch, on a background thread while
                         the next epoch trains; removed when the run ends
    model/               the best model: `trainable.safetensors` (every trained weight) + `model.json`
    metrics.json         written last: its presence marks the run finished; every accuracy with `K_ci` beside it
    test_predictions.csv one row per test video (what the best model said of it), for paired tests between runs
    train.log            the console of the run (`tracking.console_log`)
    tensorboard/         event files
    trackers.json        the MLflow and W&B run ids (`--report_to`), which a resumed run continues
    wandb/               W&B's run folder, offline unless logged in (`--report_to wandb`)
    confusion.csv/png    the test confusion matrix (`evaluation.metrics`)

A pretraining run (`vjepa-tune pretrain`) keeps config.yaml, splits.json (every video under `train`),
checkpoint/state.pt, metrics.json (its own keys) and tensorboard/, and instead of the classifier's records:

    pretrain.log         its console
    model/               the target encoder after the last step, a Hugging Face folder (`train --model RUN/model`)
    best_model/          with probing: the target encoder of the probe with the best validation accuracy
    probes/step-N/       each probe's `train` run folder (records only); probes/experiments.csv
    report.md, plots/    the verdict, probes, monitors and collapse findings; loss, collapse and probe plots

`runs.folder` (no torch: `data check --against` and the command line read runs without it) names the files, makes,
finds and resumes folders and reads and writes the records; `runs.checkpoint` saves and loads the training state and
the best model, and rebuilds a run's model. Training, inference, export and compare call these two modules for
anything about a run folder.
"""
