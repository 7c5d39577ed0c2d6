"""A resumed run goes on with its saved configuration: only the trackers follow the command line, and every other
flag given now that the run does not share is named as ignored, never dropped silently."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vjepa_tune.config import DataConfig, PretrainConfig, TrainConfig, from_plain, resumed_config, to_plain


def _saved() -> TrainConfig:
    return TrainConfig(strategy="lora", num_epochs=3, data=DataConfig(root=Path("/videos")), out=Path("runs"))


def test_a_bare_resume_keeps_the_saved_configuration_and_says_nothing() -> None:
    saved = _saved()
    assert resumed_config(TrainConfig(out=Path("elsewhere")), saved) == (saved, [])


def test_the_trackers_follow_the_command_line() -> None:
    resumed, notes = resumed_config(TrainConfig(report_to="tensorboard,mlflow"), _saved())
    assert resumed == dataclasses.replace(_saved(), report_to="tensorboard,mlflow")
    assert notes == ["--report_to tensorboard,mlflow applies from here on (the run began with tensorboard)"]


def test_other_changed_flags_are_named_as_ignored_with_the_runs_own_values() -> None:
    given = TrainConfig(num_epochs=10, strategy="lora", data=DataConfig(root=Path("/videos"), frames_per_clip=8))
    resumed, notes = resumed_config(given, _saved())
    assert resumed == _saved()
    (note,) = notes
    assert "--num_epochs 10 (the run's: 3)" in note and "--data.frames_per_clip 8 (the run's: 16)" in note
    assert "strategy" not in note and "data.root" not in note  # given, but the same as the run's


def test_a_pretraining_run_resumes_by_the_same_rule() -> None:
    saved = PretrainConfig(max_steps=100)
    given = PretrainConfig(max_steps=500, report_to="none")
    resumed, notes = resumed_config(given, saved)
    assert resumed.max_steps == 100 and resumed.report_to == "none"
    assert "--max_steps 500 (the run's: 100)" in notes[-1]


def test_plain_data_round_trips_a_configuration() -> None:
    assert from_plain(TrainConfig, to_plain(_saved())) == _saved()
