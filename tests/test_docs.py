"""The docs run: every ```python block in README.md and docs/**/*.md is executed, and the site
builds with `mkdocs build --strict`.

A page's blocks run in order in one namespace (like a notebook), in a temporary working
folder, with matplotlib on its Agg backend, so a later block can use what an earlier one made.
Not executed: fences of another language (```bash, ```text, ...) and Python blocks marked
```{.python .no-run}: use that for code that needs the network, a long run or a file you do
not have. (Write the marker exactly so: Markdown does not recognise ```python no-run as a code
block at all, and the page renders garbled; `test_no_broken_python_fences` catches it.)
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the first code line
    info: str  # the text after the opening fence
    code: str

    @property
    def runs(self) -> bool:
        info = self.info.strip()
        if info.startswith("{"):  # attribute form: {.python .no-run}
            classes = re.findall(r"\.([\w-]+)", info)
            return bool(classes) and classes[0] == "python" and "no-run" not in classes
        words = info.split()
        return bool(words) and words[0] == "python" and "no-run" not in words


def doc_pages() -> list[Path]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [p for p in pages if p.is_file()]


def code_blocks(page: Path) -> list[Block]:
    """Every fenced block of `page`, with the indentation of its fence removed."""
    blocks, lines = [], page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = len(m["indent"]), m["fence"]
        body, j = [], i + 1
        while j < len(lines):
            close = FENCE.match(lines[j])
            if close and close["fence"][0] == fence[0] and len(close["fence"]) >= len(fence) \
                    and not close["info"].strip():
                break
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        blocks.append(Block(page, i + 2, m["info"], "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def _rel(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


PAGES = [p for p in doc_pages() if any(b.runs for b in code_blocks(p))]


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_page_code_runs(page: Path, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__docs__"}
    # One BLAS thread, as `chainrule train` uses: the pages' matrices are small, and on a busy
    # 2-core machine extra BLAS threads make them many times slower, not faster.
    try:
        from threadpoolctl import threadpool_limits

        one_blas_thread = threadpool_limits(limits=1, user_api="blas")
    except ImportError:  # a core dependency, but the docs still run without it
        one_blas_thread = contextlib.nullcontext()
    with one_blas_thread:
        _run_blocks(page, namespace)


def _run_blocks(page: Path, namespace: dict) -> None:
    for block in (b for b in code_blocks(page) if b.runs):
        # pad with blank lines so a traceback names the line of the Markdown file
        source = "\n" * (block.line - 1) + block.code
        code = compile(source, str(page), "exec")
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(code, namespace)
        except Exception as exc:
            printed = out.getvalue()[-2000:]
            raise AssertionError(
                f"{_rel(page)}:{block.line}: the code block starting here failed with "
                f"{type(exc).__name__}: {exc}\n--- it printed:\n{printed}"
            ) from exc


def test_no_broken_python_fences():
    """```python <words> is not a code block to Markdown (it renders as text); use
    ```{.python .no-run} or ```python title="file.py"."""
    bad = []
    for page in doc_pages():
        for block in code_blocks(page):
            words = block.info.split()
            if words and words[0] == "python" and len(words) > 1 \
                    and not all("=" in w for w in words[1:]):
                bad.append(f"{_rel(page)}:{block.line - 1}: ```{block.info.strip()}")
    assert not bad, "use ```{.python .no-run} instead of:\n" + "\n".join(bad)


def test_backprop_table_is_the_demos_output():
    """Chapter 2 shows `chainrule demo backprop`'s output verbatim; it must stay true."""
    from chainrule.demos import backprop

    page = ROOT / "docs" / "tutorial" / "02-backprop.md"
    shown = [b.code for b in code_blocks(page) if b.info.strip() == "text"
             and b.code.startswith("Backpropagation by hand")]
    assert len(shown) == 1, "chapter 2 should show the demo's table in one ```text block"
    lines: list[str] = []
    backprop.run(out=lines.append)
    assert shown[0].rstrip("\n").splitlines() == lines


def tutorial_chapters() -> list[Path]:
    """The numbered chapters (01-…, 03a-…), not the notation page."""
    return sorted(p for p in (ROOT / "docs" / "tutorial").glob("*.md") if p.name[0].isdigit())


def test_tutorial_pages_have_code():
    """Each chapter teaches with code the tests run, not only prose."""
    chapters = tutorial_chapters()
    names = {c.stem.split("-")[0] for c in chapters}
    assert WITH_EXERCISES | {"07b", "10"} <= names, sorted(names)
    for chapter in chapters:
        assert any(b.runs for b in code_blocks(chapter)), f"{chapter.name} has no python block"


# The chapters of the third edition; later chapters are held to the same rule below.
WITH_EXERCISES = {"01", "02", "03", "03a", "03b", "03c", "04", "05", "05a", "06", "07", "07a",
                  "08", "09"}


def test_every_chapter_ends_with_exercises():
    """Each numbered chapter closes with questions to work on: an '## Exercises' section."""
    chapters = tutorial_chapters()
    missing = [c.name for c in chapters
               if not re.search(r"^## Exercises\s*$", c.read_text(encoding="utf-8"), re.M)]
    assert not missing, f"chapters without an '## Exercises' section: {missing}"


THEORY = [
    "Why backpropagation is fast",
    "The backpropagation equations for L layers",
    "Why minus the gradient",
    "Cross-entropy or squared error?",
    "Sanity checks",
    "Universal approximation",
    "No Free Lunch",
    "Further reading",
]


def test_the_theory_sections_exist():
    """The sections the tutorial promises, each once, plus the optimizers chapter and the
    notation page in the site's navigation."""
    headings = [line[3:].strip() for c in tutorial_chapters()
                for line in c.read_text(encoding="utf-8").splitlines() if line.startswith("## ")]
    for title in THEORY:
        assert headings.count(title) == 1, f"'## {title}': {headings.count(title)} times"
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert "tutorial/notation.md" in nav and "tutorial/05a-optimizers.md" in nav


def test_figures_exist_and_are_small():
    """The images the pages embed exist (made by scripts/make_doc_figures.py) and stay small."""
    img = ROOT / "docs" / "img"
    missing = []
    for page in (ROOT / "docs").rglob("*.md"):
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)", page.read_text(encoding="utf-8")):
            if target.startswith(("http:", "https:")):
                continue
            if not (page.parent / target).resolve().is_file():
                missing.append(f"{_rel(page)}: {target}")
    assert not missing, "missing images (run python scripts/make_doc_figures.py):\n" + "\n".join(
        missing
    )
    total = sum(f.stat().st_size for f in img.rglob("*") if f.is_file()) if img.is_dir() else 0
    assert total < 1.5 * 2**20, f"docs/img holds {total / 2**20:.2f} MB; keep it under 1.5 MB"


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings_handlers.python")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert (tmp_path / "site" / "tutorial" / "01-derivatives" / "index.html").is_file()


def test_train_seeds_script_prints_the_results_table():
    """scripts/train_seeds.py, which makes docs/results.md's table, runs `chainrule train` per
    seed and prints one row per kernel with every seed's accuracy and the mean ± sd."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_seeds.py"), "--seeds", "0", "1", "--",
         "--epochs", "1", "--batches", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    header, rule, row = done.stdout.strip().splitlines()
    assert header.startswith("| kernel | seed 0 | seed 1 | mean ± sd")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "default" and all(c.endswith("%") for c in cells[1:3])
    accuracies = [float(c.rstrip("%")) for c in cells[1:3]]
    mean = float(cells[3].split("±")[0])
    assert abs(mean - sum(accuracies) / 2) < 0.01


def test_results_page_is_the_one_source_of_the_headline():
    """The default run's accuracy lives in docs/results.md; the pages that talk about
    `chainrule train` link there instead of quoting a number of their own."""
    results = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    assert "{ #default-train }" in results and "same BLAS kernel" in results
    for page in ["README.md", "docs/index.md", "docs/cli.md", "docs/tutorial/07-mnist.md"]:
        text = (ROOT / page).read_text(encoding="utf-8")
        assert "results.md" in text, f"{page} should link docs/results.md"
        prose = "\n".join(b for i, b in enumerate(re.split(r"^```.*$", text, flags=re.M))
                          if i % 2 == 0)  # outside code blocks (a printed run may show one)
        assert not re.search(r"\b9[5-9]\.\d+ ?%", prose), f"{page} quotes an accuracy"
