"""Which differences between strategies a comparison's test set can tell apart (the report's paired comparison).

Every strategy is compared with the reference, the strategy whose best setting has the best validation accuracy,
run by run: two runs of the same repetition (data seed, training seed) were scored on the same test videos, so the
exact McNemar test applies to the videos only one of them got right (`evaluation.statistics.mcnemar`). With several
repetitions the differences are also compared over them with a paired t-test. Nothing here reads files: each run
comes with its per-video outcomes (the run folder's test_predictions.csv, read by the caller).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from vjepa_tune.evaluation.statistics import (
    ALPHA,
    McNemar,
    PairedSeedTest,
    Sensitivity,
    mcnemar,
    paired_seed_test,
    sensitivity_of_test_set,
)

Repetition = Hashable
"""What tells two runs of one setting apart: its (data seed, training seed)."""


@dataclass(frozen=True)
class ScoredRun:
    """One run's test result: its accuracy and, per test video, whether it got it right (None: not recorded)."""

    accuracy: float
    outcomes: Mapping[str, bool] | None


@dataclass(frozen=True)
class PairedDifference:
    """One strategy against the reference, repetition by repetition (in the reference's order)."""

    repetitions: list[Repetition]
    differences: list[float]
    """This strategy's test accuracy minus the reference's, per repetition."""
    tests: list[McNemar | None]
    """The exact McNemar test per repetition; None where the two runs cannot be paired (see `unpaired`)."""
    over_seeds: PairedSeedTest | None
    """The paired t-test over the repetitions; None with one repetition."""
    unpaired: str | None = None
    """Why some repetition has no McNemar test (a run that kept no per-video predictions, or other test videos)."""

    def significant(self, alpha: float = ALPHA) -> list[bool]:
        """Per repetition with a test: whether McNemar's p is below `alpha`."""
        return [t.p_value < alpha for t in self.tests if t is not None]


def paired_difference(reference: Mapping[Repetition, ScoredRun], other: Mapping[Repetition, ScoredRun]
                      ) -> PairedDifference:
    """`other` against `reference` on the repetitions both have; McNemar on the videos both runs scored.

    Two runs are paired only if they scored the same test videos (the same ids): runs of different data seeds, or a
    run that lost a video the other scored, are not silently compared on part of a test set.
    """
    shared = [r for r in reference if r in other]
    if not shared:
        raise ValueError("the two strategies share no repetition (data seed, seed) to compare.")
    differences, tests, reasons = [], [], []
    for repetition in shared:
        ref, oth = reference[repetition], other[repetition]
        differences.append(oth.accuracy - ref.accuracy)
        if ref.outcomes is None or oth.outcomes is None:
            tests.append(None)
            reasons.append("a run finished before vjepa-tune kept per-video test predictions")
        elif set(ref.outcomes) != set(oth.outcomes):
            tests.append(None)
            reasons.append("the two runs scored different test videos")
        else:
            ids = sorted(ref.outcomes)
            tests.append(mcnemar([ref.outcomes[i] for i in ids], [oth.outcomes[i] for i in ids]))
    over_seeds = None
    if len(shared) > 1:
        over_seeds = paired_seed_test([other[r].accuracy for r in shared], [reference[r].accuracy for r in shared])
    return PairedDifference(shared, differences, tests, over_seeds, "; ".join(dict.fromkeys(reasons)) or None)


def sensitivity_at_level(accuracies: Sequence[float], num_videos: int) -> Sensitivity:
    """What a test set of `num_videos` can detect at the level of the given accuracies (their mean, in whole videos):
    `evaluation.statistics.sensitivity_of_test_set`."""
    if not accuracies:
        raise ValueError("no accuracy to take the level from.")
    level = sum(accuracies) / len(accuracies)
    return sensitivity_of_test_set(round(level * num_videos), num_videos)


def format_p(p: float) -> str:
    """A p-value as tables print it: two decimals, two significant digits below 0.01, `< 0.0001` below that."""
    if p < 1e-4:
        return "< 0.0001"
    return f"{p:.2f}" if p >= 0.01 else f"{p:.2g}"


def format_points(difference: float) -> str:
    """A difference of accuracies in percentage points, signed: `-4.2`, `+0.0`."""
    return f"{100 * difference:+.1f}"
