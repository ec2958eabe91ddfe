"""The files of a report: `report.html` (self-contained), `report.md` and the plots the Markdown links to.

from planner.report.capacity import ReportSpec, run
from planner.report.files import report_files

report = run(ReportSpec(model="llama-70b", fleets=("8xL20",), rates=(1, 2)), workers=2)
for name, text in report_files(report).items(): ...   # relative path -> text; the caller writes them
"""

from __future__ import annotations

from planner.report.capacity import CapacityReport
from planner.report.content import build_document
from planner.report.html import render_html
from planner.report.markdown import markdown_files, render_markdown
from planner.specs.catalog import Catalog

HTML_NAME = "report.html"
MARKDOWN_NAME = "report.md"


def report_files(report: CapacityReport, catalog: Catalog | None = None) -> dict[str, str]:
    """Relative path -> content of every file of the report."""
    doc = build_document(report, catalog or report.spec.catalog())
    return {HTML_NAME: render_html(doc), MARKDOWN_NAME: render_markdown(doc), **markdown_files(doc)}
