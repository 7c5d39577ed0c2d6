"""`data check` on tiny synthetic data sets: counts and splits as training makes them, leaks, broken and short
videos, the verdict, and the command line around it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from vjepa_tune.cli import main
from vjepa_tune.config import DataConfig
from vjepa_tune.data.check import check_dataset, format_report
from vjepa_tune.data.sources import read_dataset
from vjepa_tune.data.splits import make_splits
from vjepa_tune.errors import BadInput
from vjepa_tune.synth import synthesize, write_video

FRAMES = 12


@pytest.fixture(scope="module")
def synth_sets(tmp_path_factory) -> dict[str, Path]:
    """ucf101 (3 groups of 2 per class), ntu (3 performers) and folder data sets of 48x32 videos."""
    base = tmp_path_factory.mktemp("check")
    made = {}
    for layout, per_class in (("ucf101", 6), ("ntu", 9), ("folder", 3)):
        summary = synthesize(
            base / layout,
            layout=layout,
            videos_per_class=per_class,
            size=(48, 32),
            frames=FRAMES,
            fps=25,
            workers=2,
            progress=False,
        )
        made[layout] = summary.root
    return made


@pytest.fixture
def folder_set(synth_sets, tmp_path) -> Path:
    """A private copy of the folder data set, free to damage."""
    return Path(shutil.copytree(synth_sets["folder"], tmp_path / "folder"))


def test_counts_and_split_are_those_training_makes(synth_sets):
    data = DataConfig(root=synth_sets["ucf101"])
    report = check_dataset(data, seed=3, workers=2, progress=False)
    json.dumps(report)  # the CLI prints it with --json

    index = read_dataset(data, 3)
    splits = make_splits(index, data, 3)
    assert report["format"] == "ucf101"
    assert report["num_videos"] == 24 and report["num_classes"] == 4
    assert report["classes"] == {name: 6 for name in index.classes}
    split = report["split"]
    assert split["method"] == splits.method == "group"
    assert split["totals"] == {name: len(items) for name, items in splits.items()}
    assert split["counts"] == {name: index.counts(items) for name, items in splits.items()}
    assert split["readable"] == split["totals"]
    assert split["leaks"] == {} and split["groups"] == 3
    assert report["unreadable"] == []
    assert report["videos"]["readable"] == 24
    assert report["videos"]["num_frames"] == {"min": FRAMES, "median": FRAMES, "max": FRAMES}
    assert report["videos"]["fps"]["median"] == 25
    assert report["videos"]["sizes"] == [{"size": "48x32", "videos": 24}]
    assert any("classInd.txt" in note for note in report["notes"])

    text = format_report(report)
    assert "split: group" in text and "leaks: none (3 groups" in text
    assert text.splitlines()[-1].startswith("verdict: ")


def test_videos_per_class_is_drawn_before_the_split(synth_sets):
    report = check_dataset(
        DataConfig(root=synth_sets["ucf101"], videos_per_class=4), workers=2, progress=False
    )
    assert sum(report["split"]["totals"].values()) == 16
    assert report["split"]["videos_per_class"] == 4


def test_random_split_of_grouped_videos_shows_leaks_and_group_split_none(synth_sets):
    leaky = check_dataset(DataConfig(root=synth_sets["ntu"], split="random"), workers=2, progress=False)
    assert leaky["split"]["method"] == "random"
    assert leaky["split"]["leaks"], (
        "a random split of three performers' videos puts some performer on two sides"
    )
    assert set(leaky["split"]["leaks"]) <= {"P001", "P002", "P003"}
    assert all(len(sides) > 1 for sides in leaky["split"]["leaks"].values())
    assert leaky["verdict"]["status"] == "problems"
    assert "more than one split" in leaky["verdict"]["text"]
    assert "leaks: " in format_report(leaky) and "P00" in format_report(leaky)

    clean = check_dataset(DataConfig(root=synth_sets["ntu"], split="group"), workers=2, progress=False)
    assert clean["split"]["method"] == "group" and clean["split"]["leaks"] == {}
    assert not any("more than one split" in p for p in clean["verdict"]["problems"])

    # NTU cross-view films each performance from training and test cameras: listed, but the protocol's choice.
    xview_data = DataConfig(root=synth_sets["ntu"], split="official", protocol="xview")
    xview = check_dataset(xview_data, workers=2, progress=False)
    assert xview["split"]["method"] == "official:xview" and xview["split"]["leaks"]
    assert not any("more than one" in p for p in xview["verdict"]["problems"])
    assert any("as its protocol defines it" in w for w in xview["verdict"]["warnings"])


def test_unreadable_videos_are_listed_with_reasons_and_not_raised(folder_set):
    (folder_set / "waving" / "empty.mp4").write_bytes(b"")
    (folder_set / "waving" / "notes.mp4").write_text("this is text, not a video")
    report = check_dataset(DataConfig(root=folder_set), workers=2, progress=False)
    json.dumps(report)
    reasons = {u["id"]: u["reason"] for u in report["unreadable"]}
    assert set(reasons) == {"waving/empty.mp4", "waving/notes.mp4"}
    assert "empty file" in reasons["waving/empty.mp4"]
    assert "not a readable video container" in reasons["waving/notes.mp4"]
    assert report["num_videos"] == 14 and report["videos"]["readable"] == 12
    assert sum(report["split"]["totals"].values()) == 14  # the split is made before probing, as in training
    assert sum(report["split"]["readable"].values()) == 12
    assert any("2 unreadable videos" in w for w in report["verdict"]["warnings"])
    text = format_report(report)
    assert "waving/empty.mp4: empty file" in text and "unreadable: 2 videos" in text


def test_short_videos_are_a_warning_not_a_problem(folder_set):
    frames = np.full((5, 32, 48, 3), 128, np.uint8)
    write_video(folder_set / "other" / "short.mp4", frames, fps=25)
    report = check_dataset(DataConfig(root=folder_set, frames_per_clip=8), workers=2, progress=False)
    assert report["short"]["videos"] == [{"id": "other/short.mp4", "num_frames": 5}]
    assert report["verdict"]["status"] == "warnings"
    assert report["verdict"]["problems"] == []
    text = format_report(report)
    assert "other/short.mp4: 5 frames" in text
    # What each command does with them: train repeats their frames, pretrain leaves them out.
    assert "will repeat frames in train's clips (pretrain leaves them out)" in text

    longer_clips = check_dataset(DataConfig(root=folder_set, frames_per_clip=16), workers=2, progress=False)
    assert len(longer_clips["short"]["videos"]) == 13  # every video: 12 frames, or 5


def test_clean_data_set_is_ready(synth_sets):
    report = check_dataset(
        DataConfig(root=synth_sets["folder"], frames_per_clip=FRAMES), workers=2, progress=False
    )
    assert report["verdict"]["status"] == "ok", report["verdict"]
    assert "no groups" in report["verdict"]["text"]  # a folder data set cannot be checked for leaks
    assert "cannot be checked" in format_report(report)


def test_without_groups_check_says_leaks_cannot_be_checked_and_how_to_declare_them(synth_sets):
    """A folder of clips may hold several clips of one recording: with no groups, `data check` cannot tell, so it
    says so and names both ways to declare groups instead of calling the split leak-free."""
    report = check_dataset(
        DataConfig(root=synth_sets["folder"], frames_per_clip=FRAMES), workers=2, progress=False
    )
    assert report["split"]["leaks_checked"] is False and report["split"]["leaks"] == {}
    verdict = report["verdict"]["text"]
    assert "leak-free" not in verdict
    assert "leaks between near-copies (clips cut from one recording) cannot be checked" in verdict
    assert "--data.group_pattern" in verdict and "--data.list_groups" in verdict
    leaks_line = next(line for line in format_report(report).splitlines() if line.startswith("leaks:"))
    assert "cannot be checked" in leaks_line
    assert "--data.group_pattern REGEX" in leaks_line and "--data.list_groups true" in leaks_line

    # The caveat stays when there are warnings too.
    short = check_dataset(DataConfig(root=synth_sets["folder"], frames_per_clip=16), workers=2, progress=False)
    assert short["verdict"]["status"] == "warnings" and "cannot be checked" in short["verdict"]["text"]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    """Folder layout of 2 clips cut from each of 5 recordings per class: <class>/<recording>_clip<j>.mp4."""
    root = tmp_path_factory.mktemp("recordings")
    for label, name in enumerate(("run", "sit", "walk")):
        (root / name).mkdir()
        for k in range(5):
            for j in range(2):
                frames = np.full((FRAMES, 32, 32, 3), 40 * label + 8 * k + j, np.uint8)
                write_video(root / name / f"{name}{k}_clip{j}.mp4", frames, fps=25)
    return root


def test_declared_groups_are_checked_for_leaks_from_the_command_line(recordings, capsys):
    flags = ["data", "check", "--data.root", str(recordings), "--data.frames_per_clip", str(FRAMES)]
    pattern = ["--data.group_pattern", r"^(.+)_clip\d+$"]
    assert main([*flags, *pattern, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"]["method"] == "group"  # the default once groups are declared
    assert report["split"]["leaks_checked"] is True and report["split"]["groups"] == 15
    assert report["split"]["leaks"] == {}
    assert report["verdict"]["text"] == (
        "ready: every video is readable and the split is leak-free (15 groups, each in one split)"
    )

    assert main([*flags, *pattern, "--data.split", "random"]) == 0
    text = capsys.readouterr().out
    assert "have videos in more than one split" in text and "verdict: not ready:" in text

    assert main([*flags, "--data.group_pattern", r"^(run\d)_"]) == 2
    err = capsys.readouterr().err
    assert "--data.group_pattern" in err and "finds no group in 20 of 30 video file names" in err
    assert main([*flags, "--data.group_pattern", "clip("]) == 2
    assert "is not a regular expression" in capsys.readouterr().err


def test_data_help_explains_both_ways_to_declare_groups(capsys):
    assert main(["data", "check", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--data.group_pattern" in text and "re.search" in text and "without its folders and extension" in text
    assert "--data.list_groups" in text and "<path> <label> <group>" in text


def test_a_split_training_would_refuse_is_reported(folder_set):
    for path in sorted((folder_set / "waving").iterdir())[1:]:
        path.unlink()
    report = check_dataset(DataConfig(root=folder_set), workers=2, progress=False)
    assert report["split"]["method"] is None
    assert "class 'waving' has 1 video;" in report["split"]["error"]
    assert report["verdict"]["status"] == "problems"
    assert "cannot be made" in format_report(report)


def test_counts_of_one_take_the_singular_in_the_text_report(folder_set):
    """"1 videos", "1 classes have": every count in the report agrees with its noun and verb."""
    for cls in ("other", "sitting_down", "standing_up"):
        shutil.rmtree(folder_set / cls)
    (folder_set / "waving" / "broken.mp4").write_bytes(b"")
    frames = np.full((5, 32, 48, 3), 128, np.uint8)
    write_video(folder_set / "waving" / "short.mp4", frames, fps=25)
    report = check_dataset(DataConfig(root=folder_set, frames_per_clip=8), workers=2, progress=False)
    text = format_report(report)
    assert "5 videos in 1 class\n" in text
    assert "unreadable: 1 video (left out" in text and "short: 1 video has fewer than 8 frames" in text
    assert "1 unreadable video will be left out" in report["verdict"]["text"]
    assert "1 video has fewer than 8 frames" in report["verdict"]["text"]
    assert not any(f"1 {noun}s" in text for noun in ("video", "class", "group", "frame"))


@pytest.mark.parametrize("kind", ["ready", "warnings", "problems"])
def test_the_verdict_line_says_its_status_once(folder_set, kind):
    if kind == "warnings":
        (folder_set / "other" / "broken.mp4").write_bytes(b"")
    if kind == "problems":
        for path in sorted((folder_set / "waving").iterdir())[1:]:
            path.unlink()
    report = check_dataset(DataConfig(root=folder_set, frames_per_clip=FRAMES), workers=2, progress=False)
    verdict = format_report(report).splitlines()[-1]
    expected = {"ready": "verdict: ready: ", "warnings": "verdict: ready, with warnings: ",
                "problems": "verdict: not ready: "}[kind]
    assert verdict.startswith(expected), verdict
    assert not any(word in verdict for word in ("OK:", "WARNINGS:", "PROBLEMS:"))


def test_missing_root_raises_bad_input(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        check_dataset(DataConfig(root=tmp_path / "nowhere"), workers=1, progress=False)


def test_cli_prints_the_report_as_json_and_exits_0(synth_sets, capsys):
    code = main(["data", "check", "--data.root", str(synth_sets["folder"]), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    report = json.loads(out)
    assert report["num_videos"] == 12 and report["verdict"]["status"] in {"ok", "warnings"}


def test_cli_exits_0_with_unreadable_videos_and_2_for_a_missing_root(folder_set, tmp_path, capsys):
    (folder_set / "other" / "broken.mp4").write_bytes(b"")
    assert main(["data", "check", "--data.root", str(folder_set)]) == 0
    assert "other/broken.mp4: empty file" in capsys.readouterr().out

    missing = tmp_path / "no-such-folder"
    assert main(["data", "check", "--data.root", str(missing), "--json"]) == 2
    captured = capsys.readouterr()
    assert str(missing) in captured.err and "does not exist" in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def test_against_a_run_it_reports_the_videos_that_run_saw_in_training(folder_set, trained_run, tmp_path, capsys):
    run = trained_run("head_only")
    recorded = json.loads((run / "splits.json").read_text())
    data_root = Path(yaml.safe_load((run / "config.yaml").read_text())["data"]["root"])
    for n, entry in enumerate([recorded["train"][0], recorded["train"][1], recorded["val"][0]]):
        shutil.copy2(data_root / entry["id"], folder_set / entry["class"] / f"from_training_{n}.mp4")

    assert main(["data", "check", "--data.root", str(folder_set), "--against", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"against run {run}:" in out
    assert "overlap: 3 of 15 videos were seen in training (train 2, val 1; 3 are copies under another path)" in out
    assert "3 videos were seen in training by" in out.split("verdict:")[1]

    assert main(["data", "check", "--data.root", str(folder_set), "--against", str(run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["overlap"]["seen"], report["overlap"]["train"], report["overlap"]["val"]) == (3, 2, 1)
    assert report["verdict"]["status"] == "warnings"

    assert main(["data", "check", "--data.root", str(folder_set)]) == 0
    assert "overlap" not in capsys.readouterr().out
    assert main(["data", "check", "--data.root", str(folder_set), "--against", str(tmp_path)]) == 2
    assert "has no splits.json" in capsys.readouterr().err
