"""Shared by the inference tests: one finished `lora` run on the session's synthetic videos."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def lora_run(trained_run: Callable[[str], Path]) -> Path:
    return trained_run("lora")
