"""Read a data set on disk into a `DatasetIndex`: which videos exist, their labels, groups, official splits.

One reader per layout, chosen from a table (`READERS`); `auto` looks at the files to pick one. Readers only
list files: nothing is decoded here, so reading even a 100k-video data set takes seconds. Every trap the
layouts hide (CRLF list lines, UCF-101's `HandstandPushups` folder of `v_HandStandPushups_*` files,
classInd.txt's case-insensitive order, NTU performers filmed by three cameras at once) is met in its reader.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from vjepa_tune.config import DataConfig, group_regex
from vjepa_tune.data.samples import DatasetIndex, Sample
from vjepa_tune.errors import BadInput
from vjepa_tune.randomness import key_seed
from vjepa_tune.text import counted, verb

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v"})
MAX_LISTED = 5
"""How many offending names a message or note spells out before it only counts the rest."""

# ------------------------------------------------------------------------------------------------------------
# Shared helpers


def _is_video(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def _walk_videos(folder: Path) -> Iterator[tuple[str, str]]:
    """(full path, file name) of every video under `folder`, sorted, skipping hidden files and folders
    (`.git`, macOS `._x`). Plain strings: pathlib objects cost more than the walk on 100k-file data sets."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and _is_video(name):
                yield os.path.join(dirpath, name), name


def _video_files(folder: Path) -> Iterator[Path]:
    return (Path(full) for full, _ in _walk_videos(folder))


def _sample_id(path: Path | str, root: Path) -> str:
    """The path relative to the root with forward slashes; an absolute path for a video outside the root."""
    text, base = os.fspath(path), os.path.join(os.fspath(root), "")
    if text.startswith(base):
        return text[len(base) :].replace(os.sep, "/")
    return Path(text).absolute().as_posix()


def _some(names: Iterable[object]) -> str:
    """The first few names and a count of the rest, for messages and notes."""
    names = [str(n) for n in names]
    shown = ", ".join(names[:MAX_LISTED])
    return shown if len(names) <= MAX_LISTED else f"{shown} and {len(names) - MAX_LISTED} more"


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, text) of the non-blank, non-comment lines; CRLF and a UTF-8 BOM are tolerated."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise BadInput(f"{path} is not a UTF-8 text file ({err}).") from err
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and not line.startswith("#"):
            lines.append((number, line))
    return lines


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadInput(f"{path} is not valid JSON: {err}.") from err


def _keyed_order(items: Iterable[str], *keys: object) -> list[str]:
    """Items sorted by a hash keyed on (keys, item): a seeded shuffle, blind to input order, and nested."""
    return sorted(items, key=lambda item: (key_seed(*keys, item), item))


def _no_videos(root: Path, fmt: str, expected: str) -> BadInput:
    return BadInput(f"no videos found for --data.format {fmt} under {root}: expected {expected}.")


# ------------------------------------------------------------------------------------------------------------
# folder: root/<class>/**/<video>


def read_folder(data: DataConfig, root: Path, seed: int) -> DatasetIndex:
    """One class per immediate subfolder of the root; videos may sit at any depth below their class folder."""
    loose = sorted(p.name for p in root.iterdir() if p.is_file() and _is_video(p.name))
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    per_class = {d.name: list(_video_files(d)) for d in class_dirs}
    empty = [name for name, videos in per_class.items() if not videos]
    classes = sorted(name for name, videos in per_class.items() if videos)
    if not classes:
        if loose:
            raise BadInput(
                f"{root} holds {counted(len(loose), 'video')} ({_some(loose)}) but no class folders: --data.format "
                f"folder expects {root}/<class>/<video>. Move the videos into one folder per class, or "
                "describe them in a list file (--data.format list --data.list_file FILE)."
            )
        raise _no_videos(
            root, "folder", f"{root}/<class>/<video> with extensions {', '.join(sorted(VIDEO_EXTENSIONS))}"
        )
    samples = [
        Sample(path=path, label=label, id=_sample_id(path, root))
        for label, name in enumerate(classes)
        for path in per_class[name]
    ]
    notes = []
    if loose:
        notes.append(
            f"ignored {counted(len(loose), 'video')} directly in the root, outside any class folder: {_some(loose)}."
        )
    if empty:
        notes.append(f"ignored {counted(len(empty), 'folder')} without videos: {_some(empty)}.")
    return DatasetIndex(samples=samples, classes=classes, format="folder", root=root, notes=notes)


# ------------------------------------------------------------------------------------------------------------
# list: `<path> <label>` lines


def _line_form(groups: bool) -> str:
    return "`<path> <label> <group>`" if groups else "`<path> <label>`"


def _find_list_file(data: DataConfig, root: Path) -> Path:
    if data.list_file is None:
        found = _root_list_file(root, data.list_groups)
        if found is None:
            raise BadInput(
                f"--data.format list needs --data.list_file (a file of {_line_form(data.list_groups)} lines); "
                f"none was given and {root} holds no single .txt/.csv list."
            )
        return found
    candidates = [Path(data.list_file)]
    if not Path(data.list_file).is_absolute():
        candidates.append(root / data.list_file)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise BadInput(f"--data.list_file {data.list_file} does not exist (looked in: {_some(candidates)}).")


def _root_list_file(root: Path, groups: bool = False) -> Path | None:
    """The root's only .txt/.csv file, if its first entry looks like `<video path> <label>` (with `groups`,
    `<video path> <label> <group>`)."""
    texts = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in (".txt", ".csv")]
    if len(texts) != 1:
        return None
    try:
        lines = _read_lines(texts[0])
    except BadInput:
        return None
    if not lines:
        return None
    fields = 3 if groups else 2
    parts = lines[0][1].rsplit(None, fields - 1)
    return texts[0] if len(parts) == fields and _is_video(parts[0]) else None


def read_list(data: DataConfig, root: Path, seed: int) -> DatasetIndex:
    """`<path> <label>` per line, as the V-JEPA 2 evaluation code and MMAction2 read them.

    The label is the last whitespace-separated field, so paths may contain spaces. Labels are either all
    integers (classes named by the integers, in numeric order) or all class names (sorted). With
    `--data.list_groups` each line is `<path> <label> <group>`: the last field is the group, the one before the label.
    """
    list_file = _find_list_file(data, root)
    form, fields = _line_form(data.list_groups), 3 if data.list_groups else 2
    entries: list[tuple[int, str, str, str | None]] = []
    for number, line in _read_lines(list_file):
        parts = line.rsplit(None, fields - 1)
        if len(parts) != fields:
            missing = "a group after the label (--data.list_groups)" if data.list_groups else "no label after the path"
            raise BadInput(f"{list_file}, line {number}: expected {form}, got {line!r} ({missing}).")
        entries.append((number, parts[0], parts[1], parts[2] if data.list_groups else None))
    if not entries:
        raise BadInput(f"{list_file} has no {form} lines.")

    numeric = entries[0][2].isdigit()
    for number, _, label, _ in entries:
        if label.isdigit() != numeric:
            kind = "integers" if numeric else "class names"
            raise BadInput(
                f"{list_file}, line {number}: label {label!r} breaks the file's pattern; the first line's "
                f"labels are {kind}, so every label must be one (do not mix integer labels and class names)."
            )

    if numeric:
        values = sorted({int(label) for _, _, label, _ in entries})
        classes = [str(v) for v in values]
        index_of = {str(v): i for i, v in enumerate(values)}
        label_of = {label: index_of[str(int(label))] for _, _, label, _ in entries}
    else:
        classes = sorted({label for _, _, label, _ in entries})
        label_of = {name: i for i, name in enumerate(classes)}

    samples, missing = [], []
    for number, raw_path, label, group in entries:
        path = _resolve_listed(raw_path, list_file.parent, root)
        if path is None:
            missing.append((number, raw_path))
            continue
        samples.append(Sample(path=path, label=label_of[label], id=_sample_id(path, root), group=group))
    if missing:
        hint = ""
        if not data.list_groups and all(_is_video(raw.rsplit(None, 1)[0]) for _, raw in missing):
            hint = (
                " Their lines look like `<path> <label> <group>`: add --data.list_groups true to read the last "
                "field as the group."
            )
        raise BadInput(
            f"{list_file}: {counted(len(missing), 'listed video')} {verb(len(missing), 'does', 'do')} not exist: "
            f"{_some(f'{raw} (line {number})' for number, raw in missing)}. Relative paths are looked up beside "
            f"the list file ({list_file.parent}), then under --data.root ({root}).{hint}"
        )
    notes = [f"read {counted(len(samples), 'video')} from {list_file}."]
    if data.list_groups:
        groups = len({s.group for s in samples})
        notes.append(f"groups from the last field of each line: {counted(groups, 'group')} (--data.list_groups).")
    if numeric and [int(c) for c in classes] != list(range(len(classes))):
        notes.append(
            f"integer labels {_some(classes)} are not 0..{len(classes) - 1}; they were renumbered in order."
        )
    return DatasetIndex(samples=samples, classes=classes, format="list", root=root, notes=notes)


def _resolve_listed(raw: str, list_dir: Path, root: Path) -> Path | None:
    path = Path(raw)
    if path.is_absolute():
        return path if path.is_file() else None
    for base in (list_dir, root):
        if (base / path).is_file():
            return base / path
    return None


# ------------------------------------------------------------------------------------------------------------
# NTU RGB+D: SsssCcccPpppRrrrAaaa_rgb.avi

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
    for full, name in _walk_videos(root):
        match = NTU_NAME.fullmatch(name)
        if match is None:
            ignored.append(name)
            continue
        setup, camera, performer, _, action = (int(g) for g in match.groups()[:5])
        parsed.append((full, (setup, camera, performer, action)))
    if not parsed:
        raise _no_videos(root, "ntu", "files named like S001C001P001R001A001_rgb.avi")
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
            id=_sample_id(full, root),
            group=f"P{performer:03d}",
            official_split="train" if on_train_side(setup, camera, performer) else "test",
        )
        samples_by_action[action].append(sample)

    notes = [f"NTU official split: --data.protocol {data.protocol}."]
    if ignored:
        notes.append(f"ignored {counted(len(ignored), 'video')} not named like NTU files: {_some(ignored)}.")
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


# ------------------------------------------------------------------------------------------------------------
# UCF-101: UCF-101/<Class>/v_<Class>_gGG_cCC.avi and ucfTrainTestlist/

UCF_GROUP = re.compile(r"_g(\d+)_c\d+$", re.IGNORECASE)
UCF_VIDEOS = "UCF-101"
UCF_LISTS = "ucfTrainTestlist"


def _ucf_folders(root: Path) -> tuple[Path, Path | None]:
    """(the folder of class folders, the folder holding classInd.txt or None)."""
    video_dir = root / UCF_VIDEOS if (root / UCF_VIDEOS).is_dir() else root
    for lists in (root / UCF_LISTS, video_dir / UCF_LISTS, root.parent / UCF_LISTS, root):
        if (lists / "classInd.txt").is_file():
            return video_dir, lists
    return video_dir, None


def _ucf_class_index(lists: Path) -> list[str]:
    path = lists / "classInd.txt"
    numbered = []
    for number, line in _read_lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise BadInput(f"{path}, line {number}: expected `<1-based index> <ClassName>`, got {line!r}.")
        numbered.append((int(parts[0]), parts[1]))
    indices = sorted(i for i, _ in numbered)
    if indices != list(range(1, len(numbered) + 1)):
        raise BadInput(f"{path}: class indices must be 1..{len(numbered)} without gaps or repeats.")
    return [name for _, name in sorted(numbered)]


def _ucf_split_keys(path: Path) -> set[tuple[str, str]]:
    """(class folder, file stem), case-folded, of each `<Class>/<file>.avi [label]` line of a fold list."""
    keys = set()
    for number, line in _read_lines(path):
        rel = line.split()[0].replace("\\", "/")
        if "/" not in rel:
            raise BadInput(f"{path}, line {number}: expected `<Class>/<file>.avi`, got {line!r}.")
        folder, name = rel.rsplit("/", 1)
        keys.add((folder.rsplit("/", 1)[-1].casefold(), os.path.splitext(name)[0].casefold()))
    return keys


def read_ucf101(data: DataConfig, root: Path, seed: int) -> DatasetIndex:
    """UCF-101 with labels from classInd.txt and the class taken from the folder, never from the file name."""
    video_dir, lists = _ucf_folders(root)
    folders = sorted(
        p for p in video_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != UCF_LISTS
    )
    notes = []
    if lists is not None:
        classes = _ucf_class_index(lists)
        notes.append(f"labels from {lists / 'classInd.txt'} (1-based there, 0-based here).")
    else:
        classes = sorted((p.name for p in folders), key=lambda n: (n.casefold(), n))
        notes.append(
            f"no {UCF_LISTS}/classInd.txt found: classes are the folder names sorted case-insensitively, "
            "as classInd.txt orders them; there is no official split."
        )
    label_of = {name: i for i, name in enumerate(classes)}
    label_of_folded = {name.casefold(): i for i, name in enumerate(classes)}

    official: dict[tuple[str, str], str] = {}
    if lists is not None:
        train_list, test_list = lists / f"trainlist0{data.fold}.txt", lists / f"testlist0{data.fold}.txt"
        present = [p for p in (train_list, test_list) if p.is_file()]
        if len(present) == 2:
            official.update({k: "test" for k in _ucf_split_keys(test_list)})
            official.update({k: "train" for k in _ucf_split_keys(train_list)})
            notes.append(f"UCF-101 official split: fold {data.fold} ({train_list.name}, {test_list.name}).")
        elif data.split == "official":
            missing = [str(p) for p in (train_list, test_list) if not p.is_file()]
            raise BadInput(
                f"--data.fold {data.fold}: the official UCF-101 list {_some(missing)} does not exist."
            )

    samples, unknown, ungrouped, unlisted = [], [], [], []
    for folder in folders:
        label = label_of.get(folder.name, label_of_folded.get(folder.name.casefold()))
        videos = list(_video_files(folder))
        if label is None:
            if videos:
                unknown.append(folder.name)
            continue
        for path in videos:
            stem = path.stem
            match = UCF_GROUP.search(stem)
            if match is None:
                ungrouped.append(path.name)
            key = (folder.name.casefold(), stem.casefold())
            if official and key not in official:
                unlisted.append(path.name)
            samples.append(
                Sample(
                    path=path,
                    label=label,
                    id=_sample_id(path, root),
                    group=f"g{int(match.group(1)):02d}" if match else None,
                    official_split=official.get(key),
                )
            )
    if unknown:
        raise BadInput(
            f"UCF-101 folders {_some(unknown)} under {video_dir} are not classes of "
            f"{lists / 'classInd.txt' if lists else 'the data set'}; remove them or fix classInd.txt."
        )
    if not samples:
        raise _no_videos(root, "ucf101", f"{video_dir}/<Class>/v_<Class>_gGG_cCC.avi")
    if ungrouped:
        notes.append(f"{counted(len(ungrouped), 'video')} {verb(len(ungrouped), 'has', 'have')} no _gGG_ group in "
                     f"{verb(len(ungrouped), 'its', 'their')} name: {_some(ungrouped)}.")
    if unlisted:
        notes.append(f"{counted(len(unlisted), 'video')} {verb(len(unlisted), 'is', 'are')} in neither "
                     f"fold-{data.fold} list: {_some(unlisted)}.")
    return DatasetIndex(samples=samples, classes=classes, format="ucf101", root=root, notes=notes)


# ------------------------------------------------------------------------------------------------------------
# Something-Something v2: labels.json, train.json, validation.json, <id>.webm

SSV2_ANNOTATION_DIRS = (".", "labels", "annotations")
SSV2_VIDEO_DIRS = (".", "videos", "20bn-something-something-v2")
SSV2_SPLIT_FILES = {"train.json": "train", "validation.json": "test"}
"""The official validation set is the test side; validation for model selection is carved from train."""


def _ssv2_annotations(root: Path) -> Path | None:
    for sub in SSV2_ANNOTATION_DIRS:
        folder = root / sub
        if (folder / "labels.json").is_file() and any((folder / f).is_file() for f in SSV2_SPLIT_FILES):
            return folder
    return None


def _index_by_stem(folders: Iterable[Path]) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = defaultdict(list)
    seen: set[Path] = set()
    for folder in folders:
        if not folder.is_dir() or folder.resolve() in seen:
            continue
        seen.add(folder.resolve())
        for path in _video_files(folder):
            found[path.stem].append(path)
    return found


def read_ssv2(data: DataConfig, root: Path, seed: int) -> DatasetIndex:
    """Something-Something v2; class = template with its brackets removed, as labels.json spells it."""
    annotations = _ssv2_annotations(root)
    if annotations is None:
        raise BadInput(
            f"--data.format ssv2: no labels.json with train.json or validation.json in {root} or its "
            f"{', '.join(SSV2_ANNOTATION_DIRS[1:])} folders."
        )
    labels_path = annotations / "labels.json"
    labels = _read_json(labels_path)
    if not isinstance(labels, dict) or not all(str(v).isdigit() for v in labels.values()):
        raise BadInput(
            f'{labels_path}: expected an object mapping template text to an id string such as "0".'
        )
    by_id = sorted(labels.items(), key=lambda kv: int(kv[1]))
    classes = [template for template, _ in by_id]
    label_of = {template: i for i, template in enumerate(classes)}

    stems = _index_by_stem(root / sub for sub in SSV2_VIDEO_DIRS)
    samples, missing, notes = [], [], []
    for file_name, role in SSV2_SPLIT_FILES.items():
        path = annotations / file_name
        if not path.is_file():
            notes.append(f"no {file_name}: no official {role} side.")
            continue
        entries = _read_json(path)
        if not isinstance(entries, list):
            raise BadInput(f'{path}: expected a list of {{"id", "template"}} entries.')
        for n, entry in enumerate(entries):
            if not isinstance(entry, dict) or "id" not in entry or "template" not in entry:
                raise BadInput(
                    f'{path}, entry {n}: expected an object with "id" and "template", got {entry!r}.'
                )
            template = str(entry["template"]).replace("[", "").replace("]", "")
            if template not in label_of:
                raise BadInput(
                    f"{path}, entry {n} (id {entry['id']}): template {template!r} is not a label of "
                    f"{labels_path}."
                )
            video_id = str(entry["id"])
            paths = stems.get(video_id)
            if not paths:
                missing.append(video_id)
                continue
            samples.append(
                Sample(
                    path=paths[0],
                    label=label_of[template],
                    id=_sample_id(paths[0], root),
                    official_split=role,
                )
            )
    if not samples:
        raise _no_videos(root, "ssv2", f"<id>.webm files in {_some(str(root / s) for s in SSV2_VIDEO_DIRS)}")
    if missing:
        notes.append(f"{counted(len(missing), 'annotated video')} {verb(len(missing), 'is', 'are')} missing: "
                     f"{_some(missing)}.")
    notes.append(
        "official split: train.json = train, validation.json = test; validation is carved from train."
    )
    return DatasetIndex(samples=samples, classes=classes, format="ssv2", root=root, notes=notes)


# ------------------------------------------------------------------------------------------------------------
# Kinetics: CSV label,youtube_id,time_start,time_end,split; <youtube_id>_<start:06d>_<end:06d>.mp4

KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")
KINETICS_SPLITS = {"train": "train", "val": "val", "validate": "val", "validation": "val", "test": "test"}


def _kinetics_csvs(root: Path) -> list[Path]:
    found = []
    for folder in (root, root / "annotations"):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.csv")):
            try:
                with path.open(newline="", encoding="utf-8-sig") as handle:
                    header = next(csv.reader(handle), [])
            except (OSError, UnicodeDecodeError):
                continue
            if set(KINETICS_COLUMNS) <= {h.strip() for h in header}:
                found.append(path)
    return found


def read_kinetics(data: DataConfig, root: Path, seed: int) -> DatasetIndex:
    """Kinetics from its CSVs; videos never downloaded are noted, not fatal (Kinetics always has some)."""
    csv_files = _kinetics_csvs(root)
    if not csv_files:
        raise BadInput(
            f"--data.format kinetics: no CSV with columns {','.join(KINETICS_COLUMNS)} in {root} or "
            f"{root}/annotations."
        )
    stems = _index_by_stem([root])
    rows = []
    for path in csv_files:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            for line_number, row in enumerate(csv.DictReader(handle), start=2):
                row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
                split = KINETICS_SPLITS.get(row["split"].lower())
                try:
                    start, end = int(float(row["time_start"])), int(float(row["time_end"]))
                except ValueError as err:
                    raise BadInput(
                        f"{path}, line {line_number}: time_start/time_end must be numbers, got "
                        f"{row['time_start']!r}/{row['time_end']!r}."
                    ) from err
                if split is None:
                    raise BadInput(
                        f"{path}, line {line_number}: split {row['split']!r} is not one of "
                        f"{', '.join(KINETICS_SPLITS)}."
                    )
                rows.append((row["label"], f"{row['youtube_id']}_{start:06d}_{end:06d}", split))

    unlabelled = sum(1 for label, _, _ in rows if not label)
    classes = sorted({label for label, _, _ in rows if label})
    label_of = {name: i for i, name in enumerate(classes)}
    samples, missing = [], []
    for label, stem, split in rows:
        if not label:
            continue
        paths = stems.get(stem)
        if not paths:
            missing.append(stem)
            continue
        path = next((p for p in paths if label in p.relative_to(root).parts), paths[0])
        samples.append(
            Sample(path=path, label=label_of[label], id=_sample_id(path, root), official_split=split)
        )
    if not samples:
        raise _no_videos(
            root,
            "kinetics",
            f"<youtube_id>_<start:06d>_<end:06d>.mp4 files for the rows of {_some(csv_files)}",
        )
    notes = [f"read {len(rows)} rows from {_some(p.name for p in csv_files)}."]
    if missing:
        notes.append(
            f"{len(missing)} of {counted(len(rows) - unlabelled, 'listed video')} {verb(len(missing), 'is', 'are')} "
            "missing (normal for Kinetics): "
            f"{_some(missing)}."
        )
    if unlabelled:
        notes.append(f"skipped {counted(unlabelled, 'row')} without a label (an unlabelled test set).")
    return DatasetIndex(samples=samples, classes=classes, format="kinetics", root=root, notes=notes)


# ------------------------------------------------------------------------------------------------------------
# Dispatch

READERS: dict[str, Callable[[DataConfig, Path, int], DatasetIndex]] = {
    "folder": read_folder,
    "list": read_list,
    "ntu": read_ntu,
    "ucf101": read_ucf101,
    "ssv2": read_ssv2,
    "kinetics": read_kinetics,
}


def _looks_like_ntu(root: Path) -> bool:
    """Every video under the root is named like an NTU file (stops at the first that is not)."""
    seen = False
    for _, name in _walk_videos(root):
        if NTU_NAME.fullmatch(name) is None:
            return False
        seen = True
    return seen


def detect_format(root: Path, list_file: Path | None = None, list_groups: bool = False) -> str:
    """The layout of a data set, cheap checks first and a full scan last; `folder` when nothing else fits."""
    root = Path(root)
    if list_file is not None or list_groups:
        return "list"
    if (
        (root / UCF_LISTS / "classInd.txt").is_file()
        or (root / UCF_VIDEOS).is_dir()
        or root.name == UCF_VIDEOS
    ):
        return "ucf101"
    if _ssv2_annotations(root) is not None:
        return "ssv2"
    if _kinetics_csvs(root):
        return "kinetics"
    if _looks_like_ntu(root):
        return "ntu"
    if _root_list_file(root) is not None:
        return "list"
    return "folder"


def group_of(pattern: re.Pattern[str], name: str) -> str | None:
    """The group `--data.group_pattern` finds in a video's file name (searched without folders and extension):
    its named group `group`, else its first capture group; None when it does not match or captures nothing."""
    stem, ext = os.path.splitext(os.path.basename(name))
    found = pattern.search(stem if ext.lower() in VIDEO_EXTENSIONS else os.path.basename(name))
    if found is None:
        return None
    return found.group("group" if "group" in pattern.groupindex else 1) or None


def _apply_group_pattern(index: DatasetIndex, pattern: re.Pattern[str]) -> None:
    """Give every sample the group its file name names; a name without one is refused, listing the first few."""
    groups = [group_of(pattern, s.id) for s in index.samples]
    unmatched = [os.path.basename(s.id) for s, g in zip(index.samples, groups, strict=True) if g is None]
    if unmatched:
        raise BadInput(
            f"--data.group_pattern '{pattern.pattern}' finds no group in {len(unmatched)} of {len(groups)} video "
            f"file names: {_some(unmatched)}. It is searched in each file name without its folders and extension "
            "(e.g. 'rec7_clip1' of walk/rec7_clip1.mp4) and must capture a non-empty group in every one."
        )
    replaced = index.has_groups
    index.samples = [
        Sample(s.path, s.label, s.id, group, s.official_split) for s, group in zip(index.samples, groups, strict=True)
    ]
    index.notes.append(
        f"groups from --data.group_pattern '{pattern.pattern}': {len(set(groups))} groups"
        + (f" (in place of the {index.format} format's own groups)." if replaced else ".")
    )


def _check_root(data: DataConfig) -> Path:
    if data.root is None:
        if data.list_file is not None and data.format in ("auto", "list"):
            return Path(data.list_file).parent
        raise BadInput("--data.root is required: the folder that holds the data set.")
    root = Path(data.root).expanduser()
    if not root.exists():
        raise BadInput(f"--data.root {root} does not exist.")
    if not root.is_dir():
        raise BadInput(f"--data.root {root} is not a folder.")
    if not any(root.iterdir()):
        raise BadInput(f"--data.root {root} is empty: no videos found.")
    return root


def read_dataset(data: DataConfig, seed: int = 42) -> DatasetIndex:
    """Read the data set that `data` describes; `seed` keys the only random draw (NTU action4's `other`)."""
    if data.format != "auto" and data.format not in READERS:
        raise BadInput(
            f"--data.format {data.format!r} is not a format; choose auto or one of {', '.join(READERS)}."
        )
    pattern = group_regex(data)
    root = _check_root(data)
    fmt = detect_format(root, data.list_file, data.list_groups) if data.format == "auto" else data.format
    index = READERS[fmt](data, root, seed)
    if pattern is not None:
        _apply_group_pattern(index, pattern)
    if data.format == "auto":
        index.notes.insert(0, f"format detected: {fmt} (set --data.format to override).")
    counts = Counter(s.label for s in index.samples)
    empty = [name for i, name in enumerate(index.classes) if counts[i] == 0]
    if empty:
        index.notes.append(f"{counted(len(empty), 'class')} {verb(len(empty), 'has', 'have')} no videos: "
                           f"{_some(empty)}.")
    return index
