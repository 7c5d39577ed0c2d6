"""The package's top level: `from vjepa_tune import load_run` is the real function, and importing it costs nothing."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import vjepa_tune

SRC = Path(__file__).resolve().parents[1] / "src"


def test_the_package_level_load_run_is_the_real_one_with_its_signature_and_docstring() -> None:
    from vjepa_tune.inference import load_run

    assert vjepa_tune.load_run is load_run
    parameters = inspect.signature(vjepa_tune.load_run).parameters
    assert {"run_dir", "device", "precision"} <= set(parameters)
    assert vjepa_tune.load_run.__doc__ == load_run.__doc__ and "device" in load_run.__doc__
    assert "load_run" in dir(vjepa_tune)


def test_load_run_takes_the_documented_device_and_precision(
    trained_run: Callable[[str], Path], synth_root: Path
) -> None:
    from vjepa_tune import load_run

    run = load_run(trained_run("lora"), device="cpu", precision="fp32")
    assert run.device.type == "cpu"
    prediction = run.predict(sorted((synth_root / "waving").glob("*.mp4"))[0], progress=False)
    assert prediction.label in run.classes


def test_importing_the_package_and_naming_load_run_imports_no_torch() -> None:
    code = "import sys, vjepa_tune; from vjepa_tune import load_run; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(SRC), "PATH": ""}).stdout
    assert out.strip() == "False"


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'predict'"):
        vjepa_tune.predict  # noqa: B018
