"""NTU RGB+D 60/120: SsssCcccPpppRrrrAaaa_rgb.avi, by file name; the official cross-subject, cross-view and
cross-setup protocols; the guide's four-class task (`action4`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

from vjepa_tune.config import DataConfig
from vjepa_tune.data.samples import DatasetIndex, Sample
from vjepa_tune.data.sources.common import first_few, no_videos_error, sample_id, walk_videos
from vjepa_tune.errors import BadInput
from vjepa_tune.randomness import key_seed
from vjepa_tune.text import counted

NTU_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})_rgb\.(avi|mp4)", re.IGNORECASE)
NTU_XSUB_TRAIN_PERFORMERS = frozenset(
    {1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38}  # NTU-60
    | {45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92}
    | {93, 94, 95, 97, 98, 100, 103}  # NTU-120 additions
)
NTU_XVIEW_TRAIN_CAMERAS = frozenset({2, 3})
NTU60_LAST_SETUP = 17
NTU_ACTION4 = {8: "sitting_down", 9: "standing_up", 23: "waving"}
"""The guide's named classes; every other action becomes `other`."""
NTU_ACTION4_CLASSES = ["sitting_down", "standing_up", "waving", "other"]

# fmt: off
NTU_ACTION_NAMES = dict(
    enumerate(
        [
            "drink water", "eat meal/snack", "brushing teeth", "brushing hair", "drop", "pickup", "throw",
            "sitting down", "standing up (from sitting position)", "clapping", "reading", "writing",
            "tear up paper", "wear jacket", "take off jacket", "wear a shoe", "take off a shoe",
            "wear on glasses", "take off glasses", "put on a hat/cap", "take off a hat/cap", "cheer up",
            "hand waving", "kicking something", "reach into pocket", "hopping (one foot jumping)", "jump up",
            "make a phone call/answer phone", "playing with phone/tablet", "typing on a keyboard",
            "pointing to something with finger", "taking a selfie", "check time (from watch)",
            "rub two hands together", "nod head/bow", "shake head", "wipe face", "salute",
            "put the palms together", "cross hands in front (say stop)", "sneeze/cough", "staggering",
            "falling", "touch head (headache)", "touch chest (stomachache/heart pain)",
            "touch back (backache)", "touch neck (neckache)", "nausea or vomiting condition",
            "use a fan (with hand or paper)/feeling warm", "punching/slapping other person",
            "kicking other person", "pushing other person", "pat on back of other person",
            "point finger at the other person", "hugging other person", "giving something to other person",
            "touch other person's pocket", "handshaking", "walking towards each other",
            "walking apart from each other", "put on headphone", "take off headphone", "shoot at the basket",
            "bounce ball", "tennis bat swing", "juggling table tennis balls", "hush (quite)", "flick hair",
            "thumb up", "thumb down", "make ok sign", "make victory sign", "staple book", "counting money",
            "cutting nails", "cutting paper (using scissors)", "snapping fingers", "open bottle",
            "sniff (smell)", "squat down", "toss a coin", "fold paper", "ball up paper", "play magic cube",
            "apply cream on face", "apply cream on hand back", "put on bag", "take off bag",
            "put something into a bag", "take something out of a bag", "open a box", "move heavy objects",
            "shake fist", "throw up cap/hat", "hands up (both hands)", "cross arms", "arm circles",
            "arm swings", "running on the spot", "butt kicks (kick backward)", "cross toe touch", "side kick",
            "yawn", "stretch oneself", "blow nose", "hit other person with something",
            "wield knife towards other person", "knock over other person (hit with body)",
            "grab other person's stuff", "shoot at other person with a gun", "step on foot", "high-five",
            "cheers and drink", "carry something with other person", "take a photo of other person",
            "follow other person", "whisper in other person's ear", "exchange things with other person",
            "support somebody with hand", "finger-guessing game (playing rock-paper-scissors)",
        ],
        start=1,
    )
)
# fmt: on
"""NTU RGB+D 120 action names by action id (1-60 are NTU-60), for display next to the `A008`-style codes."""


def ntu_action_name(code: str) -> str:
    """'A023' -> 'A023 (hand waving)'; an unknown id is returned unchanged."""
    name = NTU_ACTION_NAMES.get(int(code[1:])) if code[1:].isdigit() else None
    return f"{code} ({name})" if name else code


NTU_PROTOCOLS: dict[str, Callable[[int, int, int], bool]] = {
    "xsub": lambda setup, camera, performer: performer in NTU_XSUB_TRAIN_PERFORMERS,
    "xview": lambda setup, camera, performer: camera in NTU_XVIEW_TRAIN_CAMERAS,
    "xset": lambda setup, camera, performer: setup % 2 == 0,
}
"""Whether a (setup, camera, performer) is on the training side of each official protocol."""


def read_ntu(data: DataConfig, root: Path, seed: int) -> DatasetIndex:
    """NTU RGB+D 60/120 by file name; group = performer, since the three cameras film one performance."""
    parsed: list[tuple[str, tuple[int, int, int, int]]] = []
    ignored = []
    for full, name in walk_videos(root):
        match = NTU_NAME.fullmatch(name)
        if match is None:
            ignored.append(name)
            continue
        setup, camera, performer, _, action = (int(g) for g in match.groups()[:5])
        parsed.append((full, (setup, camera, performer, action)))
    if not parsed:
        raise no_videos_error(root, "ntu", "files named like S001C001P001R001A001_rgb.avi")
    if (
        data.protocol == "xset"
        and data.split == "official"
        and max(m[0] for _, m in parsed) <= NTU60_LAST_SETUP
    ):
        raise BadInput(
            f"--data.protocol xset is the NTU-120 cross-setup protocol, but {root} only holds setups "
            f"S001-S{NTU60_LAST_SETUP:03d} (NTU-60). Use --data.protocol xsub or xview for NTU-60."
        )

    on_train_side = NTU_PROTOCOLS[data.protocol]
    samples_by_action: dict[int, list[Sample]] = defaultdict(list)
    for full, (setup, camera, performer, action) in parsed:
        sample = Sample(
            path=Path(full),
            label=-1,
            id=sample_id(full, root),
            group=f"P{performer:03d}",
            official_split="train" if on_train_side(setup, camera, performer) else "test",
        )
        samples_by_action[action].append(sample)

    notes = [f"NTU official split: --data.protocol {data.protocol}."]
    if ignored:
        notes.append(f"ignored {counted(len(ignored), 'video')} not named like NTU files: {first_few(ignored)}.")
    build = _NTU_TASKS[data.task]
    samples, classes, task_notes = build(samples_by_action, seed)
    return DatasetIndex(samples=samples, classes=classes, format="ntu", root=root, notes=notes + task_notes)


def _relabel(samples: Iterable[Sample], label: int) -> list[Sample]:
    return [Sample(s.path, label, s.id, s.group, s.official_split) for s in samples]


def _ntu_all(by_action: dict[int, list[Sample]], seed: int) -> tuple[list[Sample], list[str], list[str]]:
    actions = sorted(by_action)
    samples = [s for label, a in enumerate(actions) for s in _relabel(by_action[a], label)]
    return samples, [f"A{a:03d}" for a in actions], [f"task all: {len(actions)} actions, one class each."]


def _ntu_action4(by_action: dict[int, list[Sample]], seed: int) -> tuple[list[Sample], list[str], list[str]]:
    named = {a: by_action.get(a, []) for a in NTU_ACTION4}
    absent = [f"A{a:03d}" for a, videos in named.items() if not videos]
    if len(absent) == len(named):
        raise BadInput(
            "--data.task action4 needs NTU actions A008 (sitting down), A009 (standing up) and A023 (hand "
            "waving), and none of them is in the data set; use --data.task all for the actions present."
        )
    target = max(len(v) for v in named.values())
    rest = {f"A{a:03d}": videos for a, videos in by_action.items() if a not in NTU_ACTION4}
    quotas = _even_quotas({code: len(v) for code, v in rest.items()}, target, seed)
    other = []
    for code, quota in quotas.items():
        by_key = {s.key: s for s in rest[code]}
        other.extend(by_key[k] for k in _keyed_order(by_key, seed, "ntu-other")[:quota])
    samples = []
    for action, name in NTU_ACTION4.items():
        samples.extend(_relabel(named[action], NTU_ACTION4_CLASSES.index(name)))
    samples.extend(_relabel(sorted(other, key=lambda s: s.id), NTU_ACTION4_CLASSES.index("other")))

    sizes = sorted(set(quotas.values())) or [0]
    per_action = str(sizes[0]) if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
    notes = [
        "task action4: "
        + ", ".join(f"{NTU_ACTION4[a]} = {ntu_action_name(f'A{a:03d}')}" for a in NTU_ACTION4)
        + f"; other = {counted(len(other), 'video')} drawn evenly from {counted(len(quotas), 'other action')} "
        f"({per_action} each), "
        f"about the size of the largest named class ({target})."
    ]
    if absent:
        notes.append(f"task action4: no videos of {', '.join(absent)}; those classes are empty.")
    return samples, list(NTU_ACTION4_CLASSES), notes


def _even_quotas(available: dict[str, int], total: int, seed: int) -> dict[str, int]:
    """Split `total` draws as evenly as possible over the keys, never more than a key has (water-filling).

    Which keys get the one extra draw when `total` does not divide evenly is a keyed choice.
    """
    quotas: dict[str, int] = {}
    pending = _keyed_order(available, seed, "ntu-other-quota")
    budget = min(total, sum(available.values()))
    while pending:
        share, extra = divmod(budget, len(pending))
        small = [k for k in pending if available[k] <= share]
        if not small:
            quotas.update({k: share + (1 if i < extra else 0) for i, k in enumerate(pending)})
            break
        for key in small:
            quotas[key] = available[key]
            budget -= available[key]
        pending = [k for k in pending if k not in quotas]
    return dict(sorted(quotas.items()))


_NTU_TASKS: dict[str, Callable[[dict[int, list[Sample]], int], tuple[list[Sample], list[str], list[str]]]] = {
    "action4": _ntu_action4,
    "all": _ntu_all,
}


def looks_like_ntu(root: Path) -> bool:
    """Every video under the root is named like an NTU file (stops at the first that is not)."""
    seen = False
    for _, name in walk_videos(root):
        if NTU_NAME.fullmatch(name) is None:
            return False
        seen = True
    return seen


def _keyed_order(items: Iterable[str], *keys: object) -> list[str]:
    """Items sorted by a hash keyed on (keys, item): a seeded shuffle, blind to input order, and nested."""
    return sorted(items, key=lambda item: (key_seed(*keys, item), item))
