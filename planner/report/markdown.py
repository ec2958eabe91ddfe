"""The report as Markdown, the HTML page's twin: the same sections and tables, with each plot as an SVG file
beside it (`plots/<id>.svg`)."""

from __future__ import annotations

from planner.report.content import Block, Document, Figure, Table

PLOT_DIR = "plots"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(t: Table) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in t.header) + " |", "|" + "---|" * len(t.header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines)


def plot_path(f: Figure) -> str:
    return f"{PLOT_DIR}/{f.id}.svg"


def _block(b: Block) -> str:
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Figure):
        return f"![{b.title}]({plot_path(b)})\n\n*{b.title}.* {b.caption}"
    return b


def render_markdown(doc: Document) -> str:
    parts = [f"# {doc.title}", doc.subtitle]
    parts += ["\n".join(f"{k}. [{s.title}](#{s.id})" for k, s in enumerate(doc.sections, start=1))]
    for s in doc.sections:
        parts.append(f'<a id="{s.id}"></a>\n\n## {s.title}')
        parts += [_block(b) for b in s.blocks]
    return "\n\n".join(parts) + "\n"


def markdown_files(doc: Document) -> dict[str, str]:
    """The plot files the Markdown links to: relative path -> SVG text."""
    return {plot_path(f): f.svg for f in doc.figures}
