"""Report writers: JSON (canonical), JSONL, Markdown, self-contained HTML."""

from relyscope.report.html import render_html, write_html
from relyscope.report.writers import jsonl_line, markdown, read_reports, write_json

__all__ = ["jsonl_line", "markdown", "read_reports", "render_html", "write_html", "write_json"]
