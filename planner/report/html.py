"""The report as one self-contained HTML page: inline CSS and inline SVG plots, no scripts, no external fonts,
images or links to load, so it opens offline and prints as it shows."""

from __future__ import annotations

import html
import re

from planner.report.content import Block, Document, Figure, Section, Table

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1100px;
       padding: 1.5em; color: #1b1b1b; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
.subtitle { color: #555; margin-top: 0; }
nav ol { columns: 2; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #d5d5d5; padding: 0.25em 0.55em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
figure { margin: 1.2em 0; }
figure svg { max-width: 100%; height: auto; }
figcaption { color: #444; font-size: 0.9em; }
.missing { color: #8a5a00; }
"""


def _inline(text: str) -> str:
    """Escape, then turn **bold** into <strong>."""
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))


def _table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in t.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(f: Figure) -> str:
    return (
        f'<figure id="plot-{html.escape(f.id)}" class="plot" data-plot="{html.escape(f.id)}">{f.svg}'
        f"<figcaption><strong>{html.escape(f.title)}.</strong> {html.escape(f.caption)}</figcaption></figure>"
    )


def _block(b: Block) -> str:
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Figure):
        return _figure(b)
    return f"<p>{_inline(b)}</p>"


def _section(s: Section) -> str:
    body = "\n".join(_block(b) for b in s.blocks)
    return f'<section id="{html.escape(s.id)}">\n<h2>{html.escape(s.title)}</h2>\n{body}\n</section>'


def render_html(doc: Document) -> str:
    """The page: title, contents, then every section."""
    contents = "".join(f'<li><a href="#{html.escape(s.id)}">{html.escape(s.title)}</a></li>' for s in doc.sections)
    sections = "\n".join(_section(s) for s in doc.sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(doc.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f'<h1>{html.escape(doc.title)}</h1>\n<p class="subtitle">{html.escape(doc.subtitle)}</p>\n'
        f"<nav><ol>{contents}</ol></nav>\n{sections}\n</body>\n</html>\n"
    )
