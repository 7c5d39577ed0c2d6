"""The files of a prepared copy: video names rewritten only where they name a known video."""

from __future__ import annotations

from vjepa_tune.data.copies import rewrite_video_names


def test_rewrite_video_names_touches_only_known_videos():
    renamed = {"v_A_g01_c01.avi": "v_A_g01_c01.mp4", "my clip.webm": "my clip.mp4", "x.MOV": "x.mp4"}
    text = (
        "A/v_A_g01_c01.avi 1\r\n"
        "videos/my clip.webm 3\n"
        "/abs/x.MOV,label\n"
        "A/v_A_g02_c01.avi 1\n"  # not a video of the data set: left alone
        "notes.avi.txt\n"  # not a video name at all
    )
    assert rewrite_video_names(text, renamed) == (
        "A/v_A_g01_c01.mp4 1\r\nvideos/my clip.mp4 3\n/abs/x.mp4,label\nA/v_A_g02_c01.avi 1\nnotes.avi.txt\n"
    )
