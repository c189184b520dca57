"""A report as a list of blocks, rendered twice: GitHub Markdown (`report.md`, figures linked) and one
self-contained HTML page (`report.html`, figures embedded as base64 PNG, inline CSS, no scripts, no
network), so it can be mailed, attached or opened from anywhere.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Text:
    text: str
    kind: str = "p"  # "p" or "note" (a highlighted remark)


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Cell:
    text: str
    flag: bool = False  # marked: bold in Markdown, highlighted in HTML


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: Sequence[Sequence[str | Cell]]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    path: str  # PNG path relative to the report folder; an SVG of the same name sits beside it
    caption: str


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)

    def add(self, *blocks) -> None:
        self.blocks.extend(blocks)


def _cell(value: str | Cell) -> Cell:
    return value if isinstance(value, Cell) else Cell(str(value))


def to_markdown(doc: Document) -> str:
    out = [f"# {doc.title}", ""]
    for block in doc.blocks:
        if isinstance(block, Heading):
            out += [f"{'#' * block.level} {block.text}", ""]
        elif isinstance(block, Text):
            out += [f"> **Note.** {block.text}" if block.kind == "note" else block.text, ""]
        elif isinstance(block, Bullets):
            out += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            if block.caption:
                out += [f"*{block.caption}*", ""]

            def row(cells):
                texts = [_cell(c) for c in cells]
                shown = [f"**{c.text}**" if c.flag and c.text else c.text for c in texts]
                return "| " + " | ".join(s.replace("|", "\\|").replace("\n", " ") for s in shown) + " |"

            out += [row(block.columns), "| " + " | ".join("---" for _ in block.columns) + " |"]
            out += [row(r) for r in block.rows] + [""]
        elif isinstance(block, Figure):
            svg = block.path.removesuffix(".png") + ".svg"
            out += [f"![{block.caption}]({block.path})", "", f"*{block.caption}* ([SVG]({svg}))", ""]
    return "\n".join(out).rstrip() + "\n"


_NOWRAP = 32
_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1.5em; color: #1f2328; line-height: 1.45; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 0.92em; }
th, td { border: 1px solid #d0d7de; padding: .3em .65em; text-align: left; vertical-align: top; }
td.nw { white-space: nowrap; }
.scroll { overflow-x: auto; }
th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fbfcfd; }
td.flag { background: #fff1d6 !important; font-weight: 600; }
.note { background: #eef6ff; border-left: 4px solid #2f81f7; padding: .5em .9em; margin: .8em 0; }
figure { margin: 1em 0 1.6em; }
figure img { max-width: 100%; border: 1px solid #eaeef2; }
figcaption, .caption { color: #57606a; font-size: 0.9em; }
code { background: #f6f8fa; padding: 0 .25em; border-radius: 3px; }
"""


def to_html(doc: Document, folder: Path) -> str:
    """The page, with every figure read from `folder` and embedded."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(doc.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(doc.title)}</h1>",
    ]
    for block in doc.blocks:
        if isinstance(block, Heading):
            level = min(block.level, 6)
            parts.append(f"<h{level}>{esc(block.text)}</h{level}>")
        elif isinstance(block, Text):
            if block.kind == "note":
                parts.append(f'<div class="note"><b>Note.</b> {_inline(block.text)}</div>')
            else:
                parts.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            if block.caption:
                parts.append(f'<div class="caption">{_inline(block.caption)}</div>')
            head = "".join(f"<th>{esc(c)}</th>" for c in block.columns)
            body = []
            for r in block.rows:
                cells = [_cell(c) for c in r]
                body.append(
                    "<tr>" + "".join(f"<td{_td_class(c)}>{esc(c.text)}</td>" for c in cells) + "</tr>"
                )
            table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            parts.append(f'<div class="scroll">{table}</div>')
        elif isinstance(block, Figure):
            data = base64.b64encode((folder / block.path).read_bytes()).decode()
            parts.append(
                f'<figure><img alt="{esc(block.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(block.caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _td_class(cell: Cell) -> str:
    """Short cells (numbers, intervals, names) never wrap; long text does."""
    classes = [c for c, on in (("flag", cell.flag), ("nw", len(cell.text) <= _NOWRAP)) if on]
    return f' class="{" ".join(classes)}"' if classes else ""


def _inline(text: str) -> str:
    """Escape, then turn `code` spans into <code>."""
    pieces = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))
