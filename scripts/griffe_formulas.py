"""A griffe extension for the API reference (mkdocs.yml loads it): keep docstring formulas
laid out as written.

chainrule's docstrings write formulas as indented lines right under the sentence that
introduces them (the cs231n habit):

    Backward, with G = dL/dY (N, out):
        dL/dW = Gᵀ X   (out, in)
        dL/db = Σ_rows G   (out,)

Markdown would fold those lines into the paragraph above. This extension puts a blank line
around each such indented run, so it renders as a monospace block with its alignment intact.
Google-style sections (``Args:``, ``Returns:``, ...), list items and doctest examples are
left alone.
"""

from __future__ import annotations

import re

import griffe

SECTION = re.compile(
    r"^\s*(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters|"
    r"Returns|Return|Yields|Yield|Receives|Raises|Raise|Warns|Warnings|Attributes|Examples?|"
    r"Notes?|Methods|Functions|Classes|Modules|Type Aliases|Deprecated|See Also)\s*:\s*$"
)
LIST_ITEM = re.compile(r"^\s*([-*+]|\d+[.)])\s")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def separate_formulas(text: str) -> str:
    """Blank lines around runs of lines indented ≥ 4 spaces deeper than the line before."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        opens_run = (
            line.strip()
            and nxt.strip()
            and _indent(nxt) >= _indent(line) + 4
            and not SECTION.match(line)
            and not LIST_ITEM.match(line)
            and not nxt.lstrip().startswith(">>>")
        )
        if not opens_run:
            i += 1
            continue
        base = _indent(line)
        out.append("")
        j = i + 1
        while j < len(lines) and lines[j].strip() and _indent(lines[j]) >= base + 4:
            out.append(lines[j])
            j += 1
        if j < len(lines) and lines[j].strip():
            out.append("")
        i = j
    return "\n".join(out)


class FormulaBlocks(griffe.Extension):
    """Apply `separate_formulas` to every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = separate_formulas(obj.docstring.value)
