"""Markdown tables of metrics (run folders, `eval show`, study reports)."""

from __future__ import annotations

from typing import Any


def metrics_markdown(
    rows: list[dict[str, Any]], columns: list[str] | None = None, digits: int = 4
) -> str:
    """A Markdown table from a list of row dicts (floats rounded)."""
    if not rows:
        return ""
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = [
            f"{row.get(c):.{digits}f}" if isinstance(row.get(c), float) else str(row.get(c, ""))
            for c in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
