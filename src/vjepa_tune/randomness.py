"""Keyed randomness: every random draw for one sample comes from a generator seeded by what it is for.

A draw keyed by (run seed, sample id, epoch or view index) does not depend on DataLoader workers, the number of
processes, batch order, or whether a feature came from the store. Splits and subsamples are pure functions of
(seed, list of videos) for the same reason. See docs/design.md, "Randomness is keyed, never streamed".
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def key_seed(*keys: object) -> int:
    """A 63-bit seed derived from the keys' text, stable across processes, platforms and Python hash seeds."""
    text = "\x1f".join(repr(k) for k in keys)
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def keyed_generator(*keys: object) -> torch.Generator:
    """A CPU torch generator seeded by `key_seed(*keys)`."""
    import torch  # here, not at the top: splits and synthesis use this module and start without torch

    gen = torch.Generator()
    gen.manual_seed(key_seed(*keys))
    return gen


def keyed_random(*keys: object) -> random.Random:
    """A `random.Random` seeded by `key_seed(*keys)`, for pure-Python draws (splits, subsamples)."""
    return random.Random(key_seed(*keys))


@contextlib.contextmanager
def seeded_torch_rng(*keys: object) -> Iterator[None]:
    """Run a block with the global CPU torch RNG seeded by the keys, restoring the previous state afterwards.

    torchvision's v2 transforms draw from the global generator; this keys them without touching anyone else's stream.
    """
    import torch  # here, not at the top: splits and synthesis use this module and start without torch

    with torch.random.fork_rng(devices=[]):
        # the CPU generator only: torch.manual_seed would also reseed (and not restore) every GPU's generator, and
        # on a machine whose GPU is not initialised it records a stack trace per call for its lazy seeding
        torch.default_generator.manual_seed(key_seed(*keys))
        yield
