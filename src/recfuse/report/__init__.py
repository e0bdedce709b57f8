"""Reports: one self-contained HTML page for any run or study folder."""

from recfuse.report.build import build_report

__all__ = ["build_report"]
