"""Train / validation / test splits and per-class subsamples, as pure functions of (seed, the list of videos).

Every draw ranks samples by a hash keyed on (seed, purpose, sample id), never by a shuffled stream: the
result does not depend on the order files were listed in, and drawing n+k videos keeps the n drawn before, so
the points of a scaling grid are nested. Group splits keep every group (NTU performer, UCF-101 source video)
on one side, because clips of one group are near-copies and a random clip split would score memory, not
recognition.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from vjepa_tune.config import DataConfig
from vjepa_tune.data.fingerprints import FINGERPRINT_SCHEME, FileIdentity
from vjepa_tune.data.samples import DatasetIndex, Sample, Splits
from vjepa_tune.errors import BadInput
from vjepa_tune.randomness import key_seed
from vjepa_tune.text import counted

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")
GROUP_FLAGS = (
    "--data.group_pattern REGEX (a capture group of each file name, e.g. '^(.+)_clip\\d+$' for rec7_clip1.mp4) "
    "or, for a list file, --data.list_groups true (a third column: `<path> <label> <group>`)"
)
"""How a user declares groups, for every message that asks for them."""
SPLITS_JSON_VERSION = 2
"""1: ids, labels, classes and groups; 2 adds each video's size and fingerprint (`data.fingerprints`)."""

Triple = tuple[list[Sample], list[Sample], list[Sample]]


def _ranked(samples: Sequence[Sample], seed: int, purpose: str) -> list[Sample]:
    """Samples in a seeded order that depends only on their ids."""
    return sorted(samples, key=lambda s: (key_seed(seed, purpose, s.key), s.id))


def _by_label(samples: Sequence[Sample]) -> dict[int, list[Sample]]:
    by_label: dict[int, list[Sample]] = defaultdict(list)
    for s in samples:
        by_label[s.label].append(s)
    return dict(sorted(by_label.items()))


def _by_id(samples: Sequence[Sample]) -> list[Sample]:
    return sorted(samples, key=lambda s: s.id)


def subsample_per_class(samples: Sequence[Sample], n: int, seed: int) -> list[Sample]:
    """At most `n` videos per class: the first n of a keyed ranking, so a draw of n+k holds the draw of n."""
    if n < 1:
        raise BadInput(f"videos per class must be >= 1, got {n!r}.")
    chosen: list[Sample] = []
    for label, members in _by_label(samples).items():
        if len(members) < n:
            log.warning(
                "class %d has %d videos, fewer than the %d asked for: all are kept.", label, len(members), n
            )
        chosen.extend(_ranked(members, seed, "subsample")[:n])
    return _by_id(chosen)


def allocate(n: int, ratios: Sequence[float]) -> list[int]:
    """Whole numbers of videos per split summing to `n`, nearest to `n * ratios` (largest remainder).

    Every split with a non-zero ratio gets at least one video when `n` allows it, taken from the largest.
    """
    raw = [n * r for r in ratios]
    counts = [math.floor(x + 1e-9) for x in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    wanted = [i for i, r in enumerate(ratios) if r > 0]
    if n >= len(wanted):
        for i in wanted:
            if counts[i] == 0:
                donor = max(wanted, key=lambda j: (counts[j], -j))
                counts[donor] -= 1
                counts[i] += 1
    return counts


def _random_split(samples: Sequence[Sample], ratios: Sequence[float], seed: int) -> Triple:
    """Stratified: each class is cut by `allocate` along its keyed ranking."""
    sides: Triple = ([], [], [])
    for members in _by_label(samples).values():
        ranked = _ranked(members, seed, "split")
        start = 0
        for side, count in zip(sides, allocate(len(ranked), ratios), strict=True):
            side.extend(ranked[start : start + count])
            start += count
    return sides


def _group_key(sample: Sample) -> str:
    """A sample without a group is a group of its own."""
    return sample.group if sample.group is not None else f"\x00{sample.key}"


def _group_split(samples: Sequence[Sample], ratios: Sequence[float], seed: int) -> Triple:
    """Whole groups, placed one at a time (in keyed order) where they bring the per-class fractions nearest
    to the ratios. A group may span classes (an NTU performer does every action): the cost sums over classes.
    """
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[_group_key(s)].append(s)
    totals = Counter(s.label for s in samples)
    active = [i for i, r in enumerate(ratios) if r > 0]
    filled: list[Counter[int]] = [Counter() for _ in ratios]
    placed: list[list[str]] = [[] for _ in ratios]

    def cost(side: int, counts: Counter[int]) -> float:
        ratio, have = ratios[side], filled[side]
        return sum(
            ((have[c] + k) / totals[c] - ratio) ** 2 - (have[c] / totals[c] - ratio) ** 2
            for c, k in counts.items()
        )

    for key in sorted(groups, key=lambda g: (key_seed(seed, "group-split", g), g)):
        counts = Counter(s.label for s in groups[key])
        side = min(active, key=lambda i: (cost(i, counts), i))
        filled[side].update(counts)
        placed[side].append(key)

    for side in active:  # a split left empty borrows the smallest group of the split with the most groups
        donors = [i for i in active if len(placed[i]) > 1]
        if placed[side] or not donors:
            continue
        donor = max(donors, key=lambda i: (len(placed[i]), -i))
        key = min(placed[donor], key=lambda g: (len(groups[g]), key_seed(seed, "group-split", g), g))
        placed[donor].remove(key)
        placed[side].append(key)

    sides: Triple = ([], [], [])
    for side, keys in enumerate(placed):
        for key in keys:
            sides[side].extend(groups[key])
    return sides


def _carve_val(
    train_side: list[Sample], ratios: Sequence[float], seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Validation taken from an official training side, by group where there are groups."""
    fraction = ratios[1] / (ratios[0] + ratios[1])
    carve = _group_split if any(s.group is not None for s in train_side) else _random_split
    train, val, _ = carve(train_side, (1.0 - fraction, fraction, 0.0), seed)
    return train, val


def _official_split(
    index: DatasetIndex, samples: list[Sample], data: DataConfig, seed: int
) -> tuple[Triple, str]:
    if not index.has_official_split:
        raise BadInput(
            f"--data.split official: format {index.format!r} has no official split ({index.root}); use "
            "--data.split random or group."
        )
    sides = {name: [s for s in samples if s.official_split == name] for name in SPLIT_NAMES}
    outside = sum(1 for s in samples if s.official_split not in SPLIT_NAMES)
    if outside:
        log.warning("%d videos belong to no side of the official split and are left out.", outside)
    protocol = {"ntu": data.protocol, "ucf101": f"fold{data.fold}"}.get(index.format, index.format)
    train, val, test = sides["train"], sides["val"], sides["test"]
    if not val and data.split_ratios[1] > 0:
        train, val = _carve_val(train, data.split_ratios, seed)
    return (train, val, test), f"official:{protocol}"


def _random_method(
    index: DatasetIndex, samples: list[Sample], data: DataConfig, seed: int
) -> tuple[Triple, str]:
    _require_class_sizes(index, samples, data.split_ratios)
    return _random_split(samples, data.split_ratios, seed), "random"


def _group_method(
    index: DatasetIndex, samples: list[Sample], data: DataConfig, seed: int
) -> tuple[Triple, str]:
    if not index.has_groups:
        raise BadInput(
            f"--data.split group: format {index.format!r} gives its videos no groups ({index.root}); declare "
            f"them with {GROUP_FLAGS}, or use --data.split random."
        )
    _require_class_sizes(index, samples, data.split_ratios)
    groups = {_group_key(s) for s in samples}
    active = sum(1 for r in data.split_ratios if r > 0)
    if len(groups) < active:
        raise BadInput(
            f"--data.split group needs at least {counted(active, 'group')} for --data.split_ratios "
            f"{_ratios_text(data.split_ratios)}; the videos come from only {len(groups)}: {sorted(groups)}."
        )
    return _group_split(samples, data.split_ratios, seed), "group"


METHODS: dict[str, Callable[[DatasetIndex, list[Sample], DataConfig, int], tuple[Triple, str]]] = {
    "random": _random_method,
    "group": _group_method,
    "official": _official_split,
}


def _ratios_text(ratios: Sequence[float]) -> str:
    return "/".join(f"{100 * r:g}" for r in ratios)


def _require_class_sizes(index: DatasetIndex, samples: list[Sample], ratios: Sequence[float]) -> None:
    needed = sum(1 for r in ratios if r > 0)
    counts = index.counts(samples)
    for name, count in counts.items():
        if count < needed:
            raise BadInput(
                f"class {name!r} has {counted(count, 'video')}; a {_ratios_text(ratios)} split needs at least {needed} "
                "per class (one in each split). Add videos, remove the class, or change --data.split_ratios."
            )


def make_splits(index: DatasetIndex, data: DataConfig, seed: int) -> Splits:
    """Draw `data.videos_per_class` per class (when set), then split them as `data.split` says."""
    samples = list(index.samples)
    if data.videos_per_class is not None:
        samples = subsample_per_class(samples, data.videos_per_class, seed)
    method = data.split if data.split != "auto" else ("group" if index.has_groups else "random")
    if method not in METHODS:
        raise BadInput(
            f"--data.split {data.split!r} is not a split method; choose auto or one of {', '.join(METHODS)}."
        )
    empty_classes = [name for name, count in index.counts(samples).items() if count == 0]
    if empty_classes:
        raise BadInput(
            f"class {empty_classes[0]!r} has 0 videos in {index.root}; every class needs videos to split."
        )
    (train, val, test), label = METHODS[method](index, samples, data, seed)
    splits = Splits(train=_by_id(train), val=_by_id(val), test=_by_id(test), method=label)

    expected = {
        "train": True,
        "val": data.split_ratios[1] > 0,
        "test": method == "official" or data.split_ratios[2] > 0,
    }
    for name, items in splits.items():
        if expected[name] and not items:
            raise BadInput(
                f"the {name} split is empty ({label} split of {counted(len(samples), 'video')} in {index.root} with "
                f"--data.split_ratios {_ratios_text(data.split_ratios)}); add videos or groups, or change "
                "the ratios."
            )
        if items:
            missing = [c for c, n in index.counts(items).items() if n == 0]
            if missing:
                log.warning(
                    "the %s split has no videos of %d classes: %s", name, len(missing), ", ".join(missing)
                )
    return splits


def shrink_train(
    splits: Splits, n_per_class: int, seed: int, split_ratios: Sequence[float] = (0.7, 0.15, 0.15)
) -> Splits:
    """The training side a `videos_per_class=n_per_class` run would have, with validation and test unchanged.

    A scaling grid splits once at its largest size and shrinks only the training side, so every point is
    scored on the same videos; the kept videos are the first of a keyed ranking, so smaller sizes nest in
    larger ones. The size per class is the training share `allocate` gives a class of `n_per_class` videos.
    """
    per_class = allocate(n_per_class, split_ratios)[0]
    keep = {s.id for s in subsample_per_class(splits.train, max(per_class, 1), seed)}
    return Splits(
        train=[s for s in splits.train if s.id in keep],
        val=list(splits.val),
        test=list(splits.test),
        method=splits.method,
    )


def leaks(splits: Splits) -> dict[str, list[str]]:
    """Groups found in more than one split, with the splits they are in (empty for a leak-free split)."""
    where: dict[str, list[str]] = defaultdict(list)
    for name, items in splits.items():
        for group in sorted({s.group for s in items if s.group is not None}):
            where[group].append(name)
    return {group: names for group, names in sorted(where.items()) if len(names) > 1}


def splits_to_json(
    splits: Splits, classes: Sequence[str], identities: Mapping[str, FileIdentity] | None = None,
    left_out: Mapping[str, str] | None = None,
) -> dict:
    """The exact videos of each split with their labels and groups (the run folder's splits.json), and with each
    video's `size` and `fingerprint` where `identities` (keyed by sample id) has them: what lets `evaluate` and
    `predict` recognise a copy of a training video after the originals moved. `left_out` (sample id -> reason):
    the data set's videos the run left out before its first step (unreadable, shorter than a clip), kept so that a
    resumed run still reports them."""
    identities = identities or {}

    def entry(s: Sample) -> dict:
        out = {"id": s.id, "label": s.label, "class": classes[s.label], "group": s.group}
        if (identity := identities.get(s.id)) is not None:
            out.update(size=identity.size, fingerprint=identity.fingerprint)
        return out

    return {
        "version": SPLITS_JSON_VERSION,
        "method": splits.method,
        "classes": list(classes),
        "counts": {name: len(items) for name, items in splits.items()},
        "fingerprint_scheme": FINGERPRINT_SCHEME,
        **{name: [entry(s) for s in items] for name, items in splits.items()},
        "left_out": [{"id": video_id, "reason": reason} for video_id, reason in sorted((left_out or {}).items())],
    }


def left_out_from_json(d: Mapping[str, object]) -> dict[str, str]:
    """The videos a run left out before its first step, as `splits_to_json` wrote them (none in older files)."""
    entries = d.get("left_out", [])
    if not isinstance(entries, list):
        return {}
    return {str(e["id"]): str(e.get("reason", "")) for e in entries if isinstance(e, dict) and "id" in e}


def recorded_identities(d: dict) -> dict[str, FileIdentity]:
    """The size and fingerprint splits.json records per video id; none for files written before version 2 or with
    another fingerprint scheme (those are compared by reading the listed files that still exist)."""
    if not isinstance(d, dict) or d.get("fingerprint_scheme") != FINGERPRINT_SCHEME:
        return {}
    out: dict[str, FileIdentity] = {}
    for name in SPLIT_NAMES:
        for entry in d.get(name) or []:
            if not isinstance(entry, dict):
                continue
            size, fingerprint = entry.get("size"), entry.get("fingerprint")
            if isinstance(size, int) and size >= 0 and isinstance(fingerprint, str) and "id" in entry:
                out[str(entry["id"])] = FileIdentity(size, fingerprint)
    return out


def splits_from_json(d: dict, root: Path, source: str = "splits.json") -> Splits:
    """Splits written by `splits_to_json`, with paths under `root`; `source` names the file in messages."""
    if not isinstance(d, dict):
        raise BadInput(f"{source}: expected a JSON object, got {type(d).__name__}.")
    missing_keys = [k for k in ("method", "classes", *SPLIT_NAMES) if k not in d]
    if missing_keys:
        raise BadInput(f"{source}: missing keys {', '.join(missing_keys)}; it was not written by vjepa-tune.")
    classes = list(d["classes"])
    sides: dict[str, list[Sample]] = {}
    for name in SPLIT_NAMES:
        sides[name] = []
        for n, entry in enumerate(d[name]):
            if not isinstance(entry, dict) or "id" not in entry or "label" not in entry:
                raise BadInput(f'{source}: {name}[{n}] needs "id" and "label", got {entry!r}.')
            label = entry["label"]
            if not isinstance(label, int) or not 0 <= label < len(classes):
                raise BadInput(
                    f"{source}: {name}[{n}] ({entry['id']}) has label {label!r}, not one of the "
                    f"{counted(len(classes), 'class')}."
                )
            if "class" in entry and entry["class"] != classes[label]:
                raise BadInput(
                    f"{source}: {name}[{n}] ({entry['id']}) says class {entry['class']!r} but label "
                    f"{label} is {classes[label]!r}."
                )
            sides[name].append(
                Sample(path=Path(root) / entry["id"], label=label, id=entry["id"], group=entry.get("group"))
            )
    return Splits(train=sides["train"], val=sides["val"], test=sides["test"], method=str(d["method"]))
