"""A self-contained HTML page: inline CSS, plots as embedded PNG, no script, nothing fetched.

Everything that reaches the page from a run folder is escaped: titles, configs and LLM output
are data. Markdown (a study's ``results.md``) is rendered with raw HTML disabled.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from markdown_it import MarkdownIt

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       color: #1d2329; background: #f6f7f9; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 26px; margin: 8px 0 4px; } h2 { font-size: 19px; margin-top: 32px;
     border-bottom: 1px solid #e3e6ea; padding-bottom: 4px; }
.meta { color: #5a6470; font-size: 13px; }
table { border-collapse: collapse; margin: 10px 0 18px; font-size: 13px; }
th, td { border: 1px solid #dde1e6; padding: 4px 9px; text-align: right; }
th { background: #eef1f5; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafbfc; }
pre { background: #f3f5f7; padding: 10px 12px; overflow-x: auto; font-size: 12.5px; }
figure { margin: 12px 0 20px; } figure img { max-width: 100%; border: 1px solid #e3e6ea; }
figcaption { color: #5a6470; font-size: 13px; }
.holds { color: #137333; font-weight: 600; } .fails { color: #b3261e; font-weight: 600; }
.untested { color: #8a6d00; font-weight: 600; }
nav a { margin-right: 14px; font-size: 13px; }
"""

_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


@dataclass
class Section:
    """One titled part of the page; ``body`` is already-safe HTML."""

    title: str
    body: str
    anchor: str = ""


@dataclass
class Page:
    """A report page under construction."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def add(self, title: str, body: str) -> None:
        anchor = "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")
        self.sections.append(Section(title, body, anchor))

    def render(self) -> str:
        nav = " ".join(f'<a href="#{s.anchor}">{esc(s.title)}</a>' for s in self.sections)
        parts = [
            f'<section id="{s.anchor}"><h2>{esc(s.title)}</h2>{s.body}</section>'
            for s in self.sections
        ]
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<link rel="icon" href="data:,">'  # no favicon request: the page fetches nothing
            f"<title>{esc(self.title)}</title><style>{CSS}</style></head><body><main>"
            f'<h1>{esc(self.title)}</h1><p class="meta">{esc(self.subtitle)}</p>'
            f"<nav>{nav}</nav>{''.join(parts)}</main></body></html>\n"
        )


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def table(frame: pd.DataFrame, digits: int = 4) -> str:
    """An escaped HTML table of ``frame`` (floats rounded to ``digits``)."""
    if frame.empty:
        return '<p class="meta">(empty)</p>'
    return frame.to_html(
        index=False, escape=True, border=0, float_format=lambda v: f"{v:.{digits}f}", na_rep="–"
    )


def markdown(text: str) -> str:
    """Markdown to HTML with raw HTML disabled (any tag in the text is shown, not run)."""
    return _MARKDOWN.render(text)


def pre(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def image(png: bytes | Path, caption: str) -> str:
    """A PNG (bytes or a file) embedded as a data URI, with its caption."""
    if isinstance(png, Path):
        png = png.read_bytes()
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def status_class(status: str) -> str:
    if status == "holds":
        return "holds"
    if status.startswith("not tested"):
        return "untested"
    return "fails"
