"""`vjepa-tune data check`: what training would see in a data set, before spending hours on it.

The report reads the data set and splits it exactly as training does (`read_dataset`, then `make_splits` with the same
seed), probes every video once (demuxing only, no decoding), and says what would go wrong: unreadable files (training
leaves them out), videos too short for a clip (train repeats their frames, pretrain leaves them out), groups on two
sides of the split (near-copies that inflate the test score). Leaks can only be seen between videos with groups: without
any (a folder or list layout with no `--data.group_pattern` or `--data.list_groups`) the report says it could not check
them (`split.leaks_checked` false) rather than calling the split leak-free. The report is plain JSON-ready data;
`format_report` renders it for people.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence

from vjepa_tune.config import DataConfig
from vjepa_tune.data.overlap import TrainingVideos, seen_in_training
from vjepa_tune.data.probing import probe_samples
from vjepa_tune.data.samples import DatasetIndex, Splits
from vjepa_tune.data.sources import read_dataset
from vjepa_tune.data.splits import GROUP_FLAGS, leaks, make_splits
from vjepa_tune.data.video import VideoInfo
from vjepa_tune.errors import BadInput
from vjepa_tune.text import counted, verb

REPORT_VERSION = 1
SHOWN = 10
"""Entries of a long list (unreadable files, short videos, leaking groups) that the text report spells out."""
COMMON_SIZES = 5


def _stats(values: Sequence[float], digits: int = 2) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
    }


def _video_summary(infos: dict[str, VideoInfo]) -> dict[str, object]:
    found = list(infos.values())
    sizes = Counter(f"{i.width}x{i.height}" for i in found)
    return {
        "readable": len(found),
        "duration_s": _stats([i.duration_s for i in found]),
        "num_frames": _stats([i.num_frames for i in found], 0),
        "fps": _stats([i.fps for i in found]),
        "short_side": _stats([min(i.width, i.height) for i in found], 0),
        "sizes": [{"size": size, "videos": n} for size, n in sizes.most_common(COMMON_SIZES)],
        "other_sizes": max(0, len(sizes) - COMMON_SIZES),
    }


def _split_section(
    index: DatasetIndex, data: DataConfig, seed: int, unreadable_ids: set[str]
) -> dict[str, object]:
    """Per-split counts of the split training would make, and the groups on more than one side."""
    try:
        splits: Splits = make_splits(index, data, seed)
    except BadInput as err:
        return {"method": None, "error": str(err), "leaks_checked": False}
    counts, totals, readable = {}, {}, {}
    for name, items in splits.items():
        counts[name] = index.counts(items)
        totals[name] = len(items)
        readable[name] = sum(1 for s in items if s.id not in unreadable_ids)
    chosen = [s for _, items in splits.items() for s in items]
    groups = {s.group for s in chosen if s.group is not None}
    return {
        "method": splits.method,
        "error": None,
        "videos_per_class": data.videos_per_class,
        "totals": totals,
        "readable": readable,
        "counts": counts,
        "groups": len(groups),
        "leaks_checked": bool(groups),
        "leaks": leaks(splits),
    }


UNCHECKED_LEAKS = (
    "leaks between near-copies (clips cut from one recording) cannot be checked: the videos have no groups "
    "(declare them with --data.group_pattern or --data.list_groups)"
)


def _verdict(report: dict) -> dict[str, object]:
    """problems: training would refuse the data, or its scores would not mean what they say; warnings: it
    runs, with a caveat."""
    problems, warnings = [], []
    split = report["split"]
    if split["error"]:
        problems.append(f"training cannot split the data: {split['error']}")
    else:
        if split["leaks"] and str(split["method"]).startswith("official"):
            warnings.append(
                f"the official split puts {counted(len(split['leaks']), 'group')} on more than one side, as its "
                "protocol defines it (NTU cross-view tests other cameras filming the same performances)"
            )
        elif split["leaks"]:
            n = len(split["leaks"])
            problems.append(
                f"{counted(n, 'group')} {verb(n, 'has', 'have')} videos in more than one split: near-copies of "
                "training videos would be scored as test videos (use --data.split group or official)"
            )
        empty = [name for name, n in split["readable"].items() if split["totals"][name] and n == 0]
        if empty:
            problems.append(f"no readable video left in the {', '.join(empty)} split")
        missing = {
            name: [c for c, n in per_class.items() if n == 0]
            for name, per_class in split["counts"].items()
            if split["totals"][name]
        }
        for name, classes in missing.items():
            if classes:
                warnings.append(f"the {name} split has no videos of {counted(len(classes), 'class')}")
    if report["unreadable"]:
        warnings.append(f"{counted(len(report['unreadable']), 'unreadable video')} will be left out")
    if report["short"]["videos"]:
        n = len(report["short"]["videos"])
        warnings.append(
            f"{counted(n, 'video')} {verb(n, 'has', 'have')} fewer than {report['short']['frames_per_clip']} frames "
            "and will repeat frames in train's clips (pretrain leaves them out)"
        )
    empty_classes = [name for name, n in report["classes"].items() if n == 0]
    if empty_classes:
        warnings.append(f"{counted(len(empty_classes), 'class')} {verb(len(empty_classes), 'has', 'have')} no videos")
    if report.get("overlap") and report["overlap"]["seen"]:
        seen = report["overlap"]["seen"]
        warnings.append(
            f"{counted(seen, 'video')} {verb(seen, 'was', 'were')} seen in training by {report['overlap']['run_dir']}: "
            "a score on them is not a held-out score (evaluate --exclude_seen leaves them out)"
        )
    unchecked = [] if split["error"] or split["leaks_checked"] else [UNCHECKED_LEAKS]
    if problems:
        status = "problems"
        text = "not ready: " + "; ".join(problems + warnings + unchecked)
    elif warnings:
        status = "warnings"
        text = "ready, with warnings: " + "; ".join(warnings + unchecked)
    elif unchecked:
        status = "ok"
        text = "ready: every video is readable; " + unchecked[0]
    else:
        status = "ok"
        text = (
            "ready: every video is readable and the split is leak-free "
            f"({counted(split['groups'], 'group')}, each in one split)"
        )
    return {"status": status, "problems": problems, "warnings": warnings, "text": text}


def check_dataset(
    data: DataConfig, seed: int = 42, workers: int = 2, progress: bool = True, against: TrainingVideos | None = None
) -> dict:
    """Read, split and probe the data set `data` describes; a JSON-ready report (see `format_report`).

    Unreadable videos are reported, never raised; a data set that cannot be read at all (missing root,
    malformed list) raises BadInput. `against`: a run's training videos (`runs.folder.training_videos`); the report
    then says how many of the videos that run saw in training (`data.overlap`), as `evaluate` would.
    """
    index = read_dataset(data, seed)
    overlap = (
        seen_in_training([s.path for s in index.samples], against, progress=progress) if against is not None else None
    )
    infos, unreadable = probe_samples(index.samples, workers=workers, progress=progress)
    unreadable_ids = {s.id for s, _ in unreadable}
    span = (
        data.frames_per_clip
        if data.sampling == "uniform"
        else (data.frames_per_clip - 1) * data.frame_step + 1
    )
    short = sorted((i.num_frames, sid) for sid, i in infos.items() if i.num_frames < data.frames_per_clip)
    report: dict = {
        "version": REPORT_VERSION,
        "root": str(index.root),
        "format": index.format,
        "notes": list(index.notes),
        "num_videos": len(index.samples),
        "num_classes": len(index.classes),
        "classes": index.counts(),
        "split": _split_section(index, data, seed, unreadable_ids),
        "videos": _video_summary(infos),
        "unreadable": [{"id": s.id, "path": str(s.path), "reason": reason} for s, reason in unreadable],
        "short": {
            "frames_per_clip": data.frames_per_clip,
            "videos": [{"id": sid, "num_frames": n} for n, sid in short],
            "sampling": data.sampling,
            "window_frames": span,
            "shorter_than_window": sum(1 for i in infos.values() if i.num_frames < span),
        },
        "overlap": overlap.as_dict() if overlap is not None else None,
    }
    if overlap is not None:
        report["overlap"]["text"] = overlap.describe()
    report["verdict"] = _verdict(report)
    return report


# ------------------------------------------------------------------------------------------------------------
# Text


def _stat_text(stats: dict | None, unit: str = "") -> str:
    if stats is None:
        return "-"
    return f"{stats['min']:g}{unit} / {stats['median']:g}{unit} / {stats['max']:g}{unit}"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  "
        + "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]


def _more(total: int) -> list[str]:
    return [f"  ... and {total - SHOWN} more (--json lists them all)"] if total > SHOWN else []


def format_report(report: dict) -> str:
    """The report as readable text: counts, split table, video summary, problems, verdict last."""
    split = report["split"]
    lines = [f"data set: {report['root']} (format {report['format']})"]
    lines += [f"  note: {note}" for note in report["notes"]]
    lines.append(f"{counted(report['num_videos'], 'video')} in {counted(report['num_classes'], 'class')}")

    lines.append("")
    if split["error"]:
        header = [["class", "videos"]]
        rows = [[name, str(n)] for name, n in report["classes"].items()]
        lines += _table(header + rows)
        lines.append(f"split: cannot be made: {split['error']}")
    else:
        drawn = f", {counted(n, 'video')} drawn per class" if (n := split["videos_per_class"]) else ""
        lines.append(f"split: {split['method']}{drawn} (as training makes it)")
        names = list(split["counts"])
        rows = [["class", "all", *names]]
        for cls, n in report["classes"].items():
            rows.append([cls, str(n), *(str(split["counts"][name][cls]) for name in names)])
        rows.append(["total", str(report["num_videos"]), *(str(split["totals"][name]) for name in names)])
        if report["unreadable"]:
            rows.append(
                ["readable", str(report["videos"]["readable"]), *(str(split["readable"][n]) for n in names)]
            )
        lines += _table(rows)
        if split["leaks"]:
            lines.append(f"leaks: {counted(len(split['leaks']), 'group')} in more than one split:")
            for group, sides in list(split["leaks"].items())[:SHOWN]:
                lines.append(f"  {group}: {', '.join(sides)}")
            lines += _more(len(split["leaks"]))
        elif split["leaks_checked"]:
            lines.append(f"leaks: none ({counted(split['groups'], 'group')}, each in one split)")
        else:
            lines.append(
                "leaks: cannot be checked (the videos have no groups, so clips cut from one recording may sit on "
                f"both sides); declare groups with {GROUP_FLAGS}"
            )

    videos = report["videos"]
    lines += ["", f"videos ({videos['readable']} readable; min / median / max):"]
    lines.append(f"  duration    {_stat_text(videos['duration_s'], ' s')}")
    lines.append(f"  frames      {_stat_text(videos['num_frames'])}")
    lines.append(f"  fps         {_stat_text(videos['fps'])}")
    lines.append(f"  short side  {_stat_text(videos['short_side'], ' px')}")
    if videos["sizes"]:
        sizes = ", ".join(f"{s['size']} ({s['videos']})" for s in videos["sizes"])
        extra = f" and {counted(videos['other_sizes'], 'other size')}" if videos["other_sizes"] else ""
        lines.append(f"  sizes       {sizes}{extra}")

    if report["unreadable"]:
        lines += [
            "",
            f"unreadable: {counted(len(report['unreadable']), 'video')} (left out of training, never replaced):",
        ]
        lines += [f"  {u['id']}: {u['reason']}" for u in report["unreadable"][:SHOWN]]
        lines += _more(len(report["unreadable"]))
    short = report["short"]
    if short["videos"]:
        lines += [
            "",
            f"short: {counted(len(short['videos']), 'video')} {verb(len(short['videos']), 'has', 'have')} fewer "
            f"than {short['frames_per_clip']} frames "
            "(train's clips of them repeat frames; pretrain leaves them out):",
        ]
        lines += [f"  {v['id']}: {counted(v['num_frames'], 'frame')}" for v in short["videos"][:SHOWN]]
        lines += _more(len(short["videos"]))
    if short["sampling"] == "random_window" and short["shorter_than_window"]:
        lines.append(
            f"note: {counted(short['shorter_than_window'], 'video')} "
            f"{verb(short['shorter_than_window'], 'is', 'are')} shorter than the random_window span of "
            f"{short['window_frames']} frames; train's window starts at frame 0 and repeats the last frame, pretrain "
            "leaves them out"
        )

    if report.get("overlap"):
        lines += ["", f"against run {report['overlap']['run_dir']}:", f"  {report['overlap']['text']}"]

    verdict = report["verdict"]
    lines += ["", f"verdict: {verdict['text']}"]  # the text says the status: "ready: ...", "not ready: ..."
    return "\n".join(lines)
