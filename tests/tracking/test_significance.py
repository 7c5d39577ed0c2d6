"""The paired comparison's parts: runs paired only on the same test videos, per repetition and over them."""

from __future__ import annotations

import pytest

from vjepa_tune.tracking.significance import (
    ScoredRun,
    format_p,
    format_points,
    paired_difference,
    sensitivity_at_level,
)


def _run(right: str, ids: str = "abcdefgh") -> ScoredRun:
    return ScoredRun(right.count("1") / len(right), {i: c == "1" for i, c in zip(ids, right, strict=True)})


def test_a_pair_of_runs_on_the_same_videos_gets_the_exact_mcnemar_test() -> None:
    # reference right on a-f, the other on a, b, h: 4 videos only the reference got, 1 only the other;
    # p = 2 P(X <= 1 | Binomial(5, 1/2)) = 2 * 6 / 32 = 0.375
    pair = paired_difference({(None, 42): _run("11111100")}, {(None, 42): _run("11000001")})
    (test,) = pair.tests
    assert (test.only_first, test.only_second, test.p_value) == (4, 1, pytest.approx(0.375))
    assert pair.differences == [pytest.approx(-0.375)] and pair.over_seeds is None and pair.unpaired is None
    assert pair.significant() == [False]


def test_runs_are_paired_repetition_by_repetition_and_tested_over_them() -> None:
    reference = {(None, 1): _run("11111100"), (None, 2): _run("11111110")}
    other = {(None, 2): _run("11111000"), (None, 1): _run("11000001"), (None, 3): _run("11111111")}
    pair = paired_difference(reference, other)
    assert pair.repetitions == [(None, 1), (None, 2)], "the repetitions both have, in the reference's order"
    assert [t.p_value for t in pair.tests] == [pytest.approx(0.375), pytest.approx(0.5)]
    # differences -0.375 and -0.25: t = -5 with one degree of freedom, p = 1 - 2 atan(5) / pi
    assert pair.over_seeds.p_value == pytest.approx(0.125666, abs=1e-6)


def test_runs_without_per_video_outcomes_or_on_other_videos_are_not_paired() -> None:
    old = ScoredRun(0.5, None)
    pair = paired_difference({(0, 1): _run("1100", "abcd")}, {(0, 1): old})
    assert pair.tests == [None] and "before vjepa-tune kept per-video test predictions" in pair.unpaired
    other_videos = paired_difference({(0, 1): _run("1100", "abcd")}, {(0, 1): _run("1100", "abce")})
    assert other_videos.tests == [None] and other_videos.unpaired == "the two runs scored different test videos"
    with pytest.raises(ValueError, match="share no repetition"):
        paired_difference({(0, 1): old}, {(1, 1): old})


def test_the_sensitivity_is_taken_at_the_mean_level_in_whole_videos() -> None:
    # mean of 0.75 and 0.875 on 8 videos: 6.5 -> 6 videos (round half to even) -> level 0.75
    found = sensitivity_at_level([0.75, 0.875], 8)
    assert (found.accuracy, found.num_videos, found.videos_for_difference) == (0.75, 8, 1178)
    assert found.detectable_difference == pytest.approx(0.606560, abs=1e-6)


def test_p_values_and_differences_print_as_the_tables_show_them() -> None:
    assert [format_p(p) for p in (1.0, 0.375, 0.03125, 0.0042, 0.00001)] == ["1.00", "0.38", "0.03", "0.0042",
                                                                             "< 0.0001"]
    assert [format_points(d) for d in (-0.375, 0.0, 0.0417)] == ["-37.5", "+0.0", "+4.2"]
