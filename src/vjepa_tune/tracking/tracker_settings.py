"""Which experiment trackers a run reports to (`--report_to`), where each one writes, and what it is given.

Checked when a command starts, so that a missing package is reported before hours of training, not after. No tracker
package is imported here: `tracking.trackers` starts them.
"""

from __future__ import annotations

import importlib.util
import json
import netrc
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from vjepa_tune.errors import BadInput

Scalar = str | int | float | bool | None

TRACKER_NAMES: tuple[str, ...] = ("tensorboard", "mlflow", "wandb")
DEFAULT_REPORT_TO: tuple[str, ...] = ("tensorboard",)
PROJECT = "vjepa-tune"
"""The MLflow experiment and W&B project runs go to, unless MLFLOW_EXPERIMENT_NAME or WANDB_PROJECT say otherwise."""
TENSORBOARD_DIR = "tensorboard"
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"

_PACKAGES: dict[str, tuple[str, ...]] = {"tensorboard": ("tensorboard",), "mlflow": ("mlflow",), "wandb": ("wandb",)}
_SQLITE_PACKAGES = ("sqlalchemy", "alembic")
_WANDB_HOST = "https://api.wandb.ai"


# --------------------------------------------------------------------------------------------- choosing
def parse_report_to(value: str | Sequence[str]) -> tuple[str, ...]:
    """`tensorboard,mlflow` (or a list) -> ("tensorboard", "mlflow"); `none` -> (). Checks the packages now.

    Checked when the command starts, so that a missing package is reported before hours of training, not after.
    """
    parts = value.split(",") if isinstance(value, str) else [p for item in value for p in str(item).split(",")]
    names = [p.strip().lower() for p in parts]
    if names == ["none"]:
        return ()
    chosen: list[str] = []
    for name in names:
        if name not in TRACKER_NAMES:
            shown = repr(name) if name else "an empty name"
            raise BadInput(
                f"--report_to {','.join(names)}: unknown tracker {shown}; choose from {', '.join(TRACKER_NAMES)} "
                "(comma-separated), or none."
            )
        if name not in chosen:
            chosen.append(name)
    for name in chosen:
        _require(name)
    return tuple(chosen)


def _installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it (an entry of None in sys.modules means absent)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _require(name: str) -> None:
    missing = [m for m in _PACKAGES[name] if not _installed(m)]
    if missing:
        raise BadInput(
            f"--report_to {name} needs the {' and '.join(missing)} package, which is not installed: "
            f"pip install 'vjepa-tune[{name}]'"
        )
    if name == "mlflow" and _mlflow_uri_is_sqlite():
        missing = [m for m in _SQLITE_PACKAGES if not _installed(m)]
        if missing:
            raise BadInput(
                f"--report_to mlflow writes to a SQLite file ({MLFLOW_DB} in --out), which needs "
                f"{' and '.join(missing)}, not installed: pip install 'vjepa-tune[mlflow]' (or set "
                "MLFLOW_TRACKING_URI to a tracking server)"
            )


def _mlflow_uri_is_sqlite() -> bool:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    return not uri or uri.startswith("sqlite:")


def mlflow_tracking_uri(out: Path) -> str:
    """MLFLOW_TRACKING_URI when set, else the SQLite file `OUT/mlflow.db`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path(out) / MLFLOW_DB).resolve()}"


def wandb_logged_in(environ: Mapping[str, str] | None = None) -> bool:
    """Whether W&B has credentials: WANDB_API_KEY, WANDB_IDENTITY_TOKEN_FILE, or an API key for the W&B host
    (WANDB_BASE_URL, default api.wandb.ai) in the netrc file `wandb login` writes (NETRC, else ~/.netrc)."""
    environ = os.environ if environ is None else environ
    if environ.get("WANDB_API_KEY") or environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(environ.get("WANDB_BASE_URL") or _WANDB_HOST).netloc
    if environ.get("NETRC"):
        path = Path(environ["NETRC"]).expanduser()
    else:
        home = Path(environ.get("HOME") or Path.home())
        path = next((p for p in (home / ".netrc", home / "_netrc") if p.is_file()), home / ".netrc")
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return bool(entry and entry[2])


def wandb_mode(environ: Mapping[str, str] | None = None) -> str | None:
    """The `mode` to start W&B with: None when WANDB_MODE is set (W&B reads it), else online if logged in, else
    offline, so that a user without an account still gets a run folder `wandb sync` can upload later."""
    environ = os.environ if environ is None else environ
    if environ.get("WANDB_MODE"):
        return None
    return "online" if wandb_logged_in(environ) else "offline"


# --------------------------------------------------------------------------------------------- values
def flat_config(config: Mapping[str, object], prefix: str = "") -> dict[str, Scalar]:
    """A nested configuration as dotted keys with scalar values (`lora.rank: 16`), as MLflow params and
    TensorBoard hparams need; lists become JSON text."""
    flat: dict[str, Scalar] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_config(value, f"{name}."))
        elif value is None or isinstance(value, (bool, int, float, str)):
            flat[name] = value
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value, default=str)
        else:
            flat[name] = str(value)
    return flat


def final_scalars(metrics: Mapping[str, object]) -> dict[str, float]:
    """The numbers of a metrics.json worth a tracker's summary: top-level numbers (not flags), and each `K_ci`
    interval as `K_ci_low` and `K_ci_high`. Nested tables (history, per-class scores, versions) are left out."""
    scalars: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)):
            scalars[key] = float(value)
        elif key.endswith("_ci") and isinstance(value, (list, tuple)) and len(value) == 2:
            low, high = value
            if isinstance(low, (int, float)) and isinstance(high, (int, float)):
                scalars[f"{key}_low"], scalars[f"{key}_high"] = float(low), float(high)
    return scalars
