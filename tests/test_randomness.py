"""Keyed randomness: the same keys give the same draws, and a keyed block leaves everyone else's stream alone."""

from __future__ import annotations

import pytest
import torch

from vjepa_tune.randomness import keyed_random, seeded_torch_rng


def test_a_keyed_block_draws_by_its_keys_and_restores_the_cpu_stream() -> None:
    torch.manual_seed(7)
    expected_next = torch.rand(3)
    torch.manual_seed(7)
    with seeded_torch_rng("clip", 1):
        first = torch.rand(3)
    with seeded_torch_rng("clip", 1):
        again = torch.rand(3)
    with seeded_torch_rng("clip", 2):
        other = torch.rand(3)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert torch.equal(torch.rand(3), expected_next), "the caller's stream goes on as if the blocks never ran"
    assert keyed_random("a", 1).random() == keyed_random("a", 1).random() != keyed_random("a", 2).random()


def test_a_keyed_block_never_reseeds_the_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.manual_seed would reseed every GPU's generator too, which fork_rng(devices=[]) does not restore: a
    training step's dropout on the GPU would restart from each clip's key."""
    calls: list[int] = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: calls.append(seed))
    with seeded_torch_rng("clip", 1):
        torch.rand(1)
    assert calls == []
