"""The `list` layout: `<path> <label>` lines (with `--data.list_groups`, `<path> <label> <group>`), as the V-JEPA 2
evaluation code and MMAction2 read them.
"""

from __future__ import annotations

from pathlib import Path

from vjepa_tune.config import DataConfig
from vjepa_tune.data.samples import DatasetIndex, Sample
from vjepa_tune.data.sources.common import first_few, is_video, read_lines, sample_id
from vjepa_tune.errors import BadInput
from vjepa_tune.text import counted, verb


def _line_form(groups: bool) -> str:
    return "`<path> <label> <group>`" if groups else "`<path> <label>`"


def _find_list_file(data: DataConfig, root: Path) -> Path:
    if data.list_file is None:
        found = root_list_file(root, data.list_groups)
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
    raise BadInput(f"--data.list_file {data.list_file} does not exist (looked in: {first_few(candidates)}).")


def root_list_file(root: Path, groups: bool = False) -> Path | None:
    """The root's only .txt/.csv file, if its first entry looks like `<video path> <label>` (with `groups`,
    `<video path> <label> <group>`)."""
    texts = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in (".txt", ".csv")]
    if len(texts) != 1:
        return None
    try:
        lines = read_lines(texts[0])
    except BadInput:
        return None
    if not lines:
        return None
    fields = 3 if groups else 2
    parts = lines[0][1].rsplit(None, fields - 1)
    return texts[0] if len(parts) == fields and is_video(parts[0]) else None


def read_list(data: DataConfig, root: Path, seed: int) -> DatasetIndex:
    """`<path> <label>` per line, as the V-JEPA 2 evaluation code and MMAction2 read them.

    The label is the last whitespace-separated field, so paths may contain spaces. Labels are either all
    integers (classes named by the integers, in numeric order) or all class names (sorted). With
    `--data.list_groups` each line is `<path> <label> <group>`: the last field is the group, the one before the label.
    """
    list_file = _find_list_file(data, root)
    form, fields = _line_form(data.list_groups), 3 if data.list_groups else 2
    entries: list[tuple[int, str, str, str | None]] = []
    for number, line in read_lines(list_file):
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
        samples.append(Sample(path=path, label=label_of[label], id=sample_id(path, root), group=group))
    if missing:
        hint = ""
        if not data.list_groups and all(is_video(raw.rsplit(None, 1)[0]) for _, raw in missing):
            hint = (
                " Their lines look like `<path> <label> <group>`: add --data.list_groups true to read the last "
                "field as the group."
            )
        raise BadInput(
            f"{list_file}: {counted(len(missing), 'listed video')} {verb(len(missing), 'does', 'do')} not exist: "
            f"{first_few(f'{raw} (line {number})' for number, raw in missing)}. Relative paths are looked up beside "
            f"the list file ({list_file.parent}), then under --data.root ({root}).{hint}"
        )
    notes = [f"read {counted(len(samples), 'video')} from {list_file}."]
    if data.list_groups:
        groups = len({s.group for s in samples})
        notes.append(f"groups from the last field of each line: {counted(groups, 'group')} (--data.list_groups).")
    if numeric and [int(c) for c in classes] != list(range(len(classes))):
        notes.append(
            f"integer labels {first_few(classes)} are not 0..{len(classes) - 1}; they were renumbered in order."
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
