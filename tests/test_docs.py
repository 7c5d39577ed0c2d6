"""Every Python example in README.md and docs/ runs as written, against a small run of the bundled `tiny`.

The examples name a run folder, videos and folders by the placeholders in `PLACEHOLDERS` (docs/using_a_run.md says
what each stands for); each is replaced by a real one made here. A block that cannot run here says so in the docs
right before it, with an HTML comment `<!-- not run: REASON -->`: only such a block is skipped, and any other block
that fails fails its test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from vjepa_tune.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_NOT_RUN = re.compile(r"<!--\s*not run:\s*(.+?)\s*-->")
CLASSES = ["other", "sitting_down", "standing_up", "waving"]


@dataclass(frozen=True)
class Example:
    document: Path
    line: int
    code: str
    not_run: str | None
    """The reason the docs give for not running it, or None."""

    @property
    def name(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def python_examples(document: Path, text: str | None = None) -> list[Example]:
    """The ```python blocks of `document` (read from disk unless `text` is given), in order."""
    text = document.read_text(encoding="utf-8") if text is None else text
    examples = []
    for match in _PYTHON_BLOCK.finditer(text):
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
        marker = _NOT_RUN.fullmatch(before.strip())
        line = text.count("\n", 0, match.start()) + 1
        examples.append(Example(document, line, match.group(1), marker.group(1) if marker else None))
    return examples


EXAMPLES = [example for document in DOCUMENTS for example in python_examples(document)]


@pytest.fixture(scope="module")
def placeholders(tiny_run: Path, synth_root: Path, footage_root: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What each placeholder of the docs stands for, made real: the run, its merged export, videos, a folder."""
    from vjepa_tune.synth import render_sequence, write_video

    work = tmp_path_factory.mktemp("docs")
    exported = work / "exported"
    assert main(["export", str(tiny_run), str(exported), "--merge"]) == 0
    long_video = work / "long_recording.mp4"
    sequence = render_sequence([("sitting_down", 40), ("waving", 40), ("standing_up", 40)], 5, size=(64, 64))
    write_video(long_video, sequence.frames, fps=25)
    return {
        "runs/lora-20261126-101500": str(tiny_run),
        "RUN_DIR": str(tiny_run),
        "OUT_DIR": str(exported),
        "long_recording.mp4": str(long_video),
        "video.mp4": str(sorted((synth_root / "waving").glob("*.mp4"))[0]),
        "clips/": str(synth_root / "sitting_down"),
        "MY_FOOTAGE": str(footage_root),
        "MY_LABELLED": str(synth_root),
    }


def _substitute(code: str, placeholders: dict[str, str]) -> str:
    for placeholder in sorted(placeholders, key=len, reverse=True):
        code = re.sub(rf'(?<=["\']){re.escape(placeholder)}', placeholders[placeholder].replace("\\", "\\\\"), code)
    return code


def test_the_docs_hold_python_examples_and_a_not_run_marker_counts_only_right_before_its_block() -> None:
    assert {e.document.name for e in EXAMPLES} >= {"README.md", "using_a_run.md"}
    doc = ROOT / "doc.md"
    marked = "text\n\n<!-- not run: needs a GPU -->\n```python\nimport this\n```\n"
    assert [e.not_run for e in python_examples(doc, marked)] == ["needs a GPU"]
    too_far = "<!-- not run: x -->\ntext\n```python\npass\n```\n"
    assert [e.not_run for e in python_examples(doc, too_far)] == [None]


def test_placeholders_are_replaced_only_where_they_are_quoted_paths() -> None:
    code = 'x = "OUT_DIR/base_model"\ny = "video.mp4"\n# the OUT_DIR folder\n'
    out = _substitute(code, {"OUT_DIR": "/tmp/e", "video.mp4": "/v/a.mp4"})
    assert out == 'x = "/tmp/e/base_model"\ny = "/v/a.mp4"\n# the OUT_DIR folder\n'


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_every_python_example_in_the_docs_runs(
    example: Example,
    placeholders: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if example.not_run is not None:
        pytest.skip(f"the docs say it is not run: {example.not_run}")
    monkeypatch.chdir(tmp_path)
    code = _substitute(example.code, placeholders)
    namespace: dict[str, object] = {"__name__": "__docs_example__"}
    exec(compile(code, example.name, "exec"), namespace)  # noqa: S102 - running the docs is the point
    printed = capsys.readouterr().out
    if "print(" in example.code:
        assert any(name in printed for name in CLASSES), f"{example.name} printed no class of the run: {printed!r}"
