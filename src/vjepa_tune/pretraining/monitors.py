"""Collapse monitors for V-JEPA pretraining: feature spread, effective rank, and a detector that says what helps.

A joint-embedding objective can be minimised by features that stop carrying information (every token maps to nearly
the same vector): the loss looks fine while the representation collapses. Users of the official code report this as
loss spikes and as a slow fall of the features' spread. The signals:

- `target_std`: the target features' standard deviation per feature dimension over every token of a batch, averaged
  over the dimensions (near 0 when all tokens look alike; the targets are layer-normed, so distinct tokens give
  values of order 1 whatever the model);
- `target_rank`: their effective rank, exp of the entropy of the normalised singular values (Roy & Vetterli 2007,
  as RankMe uses it): about 1 when one direction carries everything, up to the feature width;
- `pred_std`: the same spread for the predictor's outputs.

`CollapseMonitor` turns them into console findings that start with `collapse:`. Pure logic over numbers; the only
state is the first value of each signal and a window of recent losses, saved with `state_dict` for exact resume.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

ADVICE = ("usually helps: a lower learning rate, a higher EMA momentum (closer to 1, e.g. 0.999-0.9995), "
          "more varied data")

FALLING_SIGNALS = ("target_std", "target_rank", "pred_std")


def _rows(features: torch.Tensor) -> torch.Tensor:
    return features.detach().reshape(-1, features.size(-1)).float()


def feature_std(features: torch.Tensor) -> float:
    """Mean over the last (feature) dimension of each dimension's standard deviation over all other positions
    (tokens and clips); population standard deviation, so one row gives 0."""
    return _rows(features).std(dim=0, correction=0).mean().item()


def effective_rank(features: torch.Tensor, max_rows: int = 4096) -> float:
    """exp(entropy of the singular values normalised to sum 1) of the (rows, features) matrix; at most `max_rows`
    evenly spaced rows are used (every clip of a batch is represented), which bounds the cost of the SVD."""
    rows = _rows(features)
    if not bool(torch.isfinite(rows).all()):
        return math.nan  # no spectrum to speak of; the caller stops the run on non-finite signals
    if rows.size(0) > max_rows:
        rows = rows[torch.linspace(0, rows.size(0) - 1, max_rows, device=rows.device).long()]
    singular = torch.linalg.svdvals(rows).double()
    total = singular.sum()
    if total <= 0:
        return 0.0
    p = singular / total
    p = p[p > 0]
    return math.exp(-(p * p.log()).sum().item())


def collapse_signals(targets: torch.Tensor, predictions: Sequence[torch.Tensor]) -> dict[str, float]:
    """target_std, target_rank and pred_std of one batch: `targets` (clips, tokens, width), the predictor's outputs
    (clips, target tokens, width) of each mask set."""
    predicted = torch.cat([_rows(p) for p in predictions]) if predictions else targets.new_zeros(0, targets.size(-1))
    return {
        "target_std": feature_std(targets),
        "target_rank": effective_rank(targets),
        "pred_std": feature_std(predicted) if predicted.numel() else 0.0,
    }


@dataclass(frozen=True)
class CollapseRules:
    """When the detector speaks."""

    fall_fraction: float = 0.2
    """A signal below this fraction of its first value has fallen far."""
    degenerate_std: float = 0.05
    """target_std below this at the first check means the features are nearly identical across tokens and clips."""
    degenerate_rank: float = 1.5
    """target_rank below this at the first check means one direction carries nearly everything."""
    spike_factor: float = 3.0
    """A loss this many times its running median is a spike."""
    spike_window: int = 50
    """Losses in the running median."""
    spike_history: int = 10
    """Losses seen before spikes are looked for (the first steps move fast)."""


class CollapseMonitor:
    """Findings about collapse, each a line starting `collapse:` that says what usually helps.

    Call `check` with the loss at every step (cheap) and with the feature signals at every monitor step; a signal's
    first value is its reference. A finding is reported when it starts, not again while it lasts.

    `settle_steps`: pred_std takes its reference at the first check at or after this step (the recipe passes the
    learning-rate warm-up). A predictor that is new, or was never trained (the bundled `tiny`'s), first learns to
    predict the targets' mean, so its spread falls steeply during the warm-up whatever happens to the encoder; its
    value before then is no reference for "far below its start".
    """

    def __init__(self, rules: CollapseRules | None = None, settle_steps: int = 0) -> None:
        self.rules = rules or CollapseRules()
        self.settle_steps = settle_steps
        self.first: dict[str, tuple[int, float]] = {}
        self.losses: list[float] = []
        self.active: set[str] = set()

    def check(self, step: int, signals: Mapping[str, float]) -> list[str]:
        """Findings of this step; non-finite values are left to the caller (a non-finite loss ends the run)."""
        findings: list[str] = []
        finite = {k: float(v) for k, v in signals.items() if math.isfinite(float(v))}
        if "target_std" in finite and "target_std" not in self.first:
            findings += self._degenerate(step, finite)
        for name in FALLING_SIGNALS:
            if name in finite:
                findings += self._fall(step, name, finite[name])
        if "loss" in finite:
            findings += self._spike(step, finite["loss"])
        return findings

    def _raise(self, key: str, is_on: bool) -> bool:
        """True when a finding starts now; remembers it until it stops."""
        if not is_on:
            self.active.discard(key)
            return False
        if key in self.active:
            return False
        self.active.add(key)
        return True

    def _degenerate(self, step: int, signals: Mapping[str, float]) -> list[str]:
        std, rank = signals["target_std"], signals.get("target_rank", math.inf)
        if std >= self.rules.degenerate_std and rank >= self.rules.degenerate_rank:
            return []
        self.active.add("degenerate")
        rank_text = f", target_rank {rank:.2f}" if math.isfinite(rank) else ""
        return [
            f"collapse: the target features are nearly identical across tokens and clips from the start (step "
            f"{step}: target_std {std:.4f}{rank_text}); the clips may be near-constant (blank, frozen or letterboxed "
            f"frames) or the model collapsed before this run; {ADVICE}."
        ]

    def _fall(self, step: int, name: str, value: float) -> list[str]:
        if name not in self.first:
            if name == "pred_std" and step < self.settle_steps:
                return []
            self.first[name] = (step, value)
            return []
        first_step, first = self.first[name]
        fallen = first > 0 and value < self.rules.fall_fraction * first
        if not self._raise(f"fall:{name}", fallen):
            return []
        meaning = ("the features are collapsing onto fewer directions" if name == "target_rank" else
                   "the predictions are losing their spread" if name == "pred_std" else
                   "the features are losing their spread")
        return [
            f"collapse: {name} fell to {value:.4g} at step {step}, below {self.rules.fall_fraction:.0%} of its "
            f"{first:.4g} at step {first_step}: {meaning}; {ADVICE}."
        ]

    def _spike(self, step: int, loss: float) -> list[str]:
        history = self.losses[-self.rules.spike_window:]
        self.losses = (history + [loss])[-self.rules.spike_window:]
        if len(history) < self.rules.spike_history:
            return []
        median = statistics.median(history)
        spiked = median > 0 and loss > self.rules.spike_factor * median
        if not self._raise("spike", spiked):
            return []
        return [
            f"collapse: the loss spiked to {loss:.4g} at step {step}, {loss / median:.1f} times its running median "
            f"{median:.4g}; V-JEPA's loss spikes are usually partial collapse; {ADVICE}."
        ]

    def references(self) -> dict[str, tuple[int, float]]:
        """Each signal's reference, (step, value), that its fall is measured against (pred_std's after settling)."""
        return dict(self.first)

    def state_dict(self) -> dict:
        """Plain data (JSON-able) for a checkpoint."""
        return {
            "first": {name: [step, value] for name, (step, value) in self.first.items()},
            "losses": list(self.losses),
            "active": sorted(self.active),
        }

    def load_state_dict(self, state: Mapping) -> None:
        self.first = {name: (int(step), float(value)) for name, (step, value) in state["first"].items()}
        self.losses = [float(v) for v in state["losses"]]
        self.active = set(state["active"])
