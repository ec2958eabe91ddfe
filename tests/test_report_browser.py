"""The report page in headless Chromium: every section and plot renders, nothing is broken, no console errors.

Chromium runs twice on a small report, with no network and a fresh profile:
1. the page as written, with console messages logged to stderr (the page has no scripts, so any console
   message is a fault: a resource that failed to load, a parse error);
2. a copy with a checking script appended, which measures what the browser laid out (each section, each plot's
   SVG box and text, broken images, external references, duplicate ids) and writes it into the DOM as JSON,
   which `--dump-dom` prints.

Without Chromium the test skips, unless TDPLAN_REQUIRE_BROWSER is set (CI sets it after installing Chromium).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from planner.report.capacity import ReportSpec, run
from planner.report.files import HTML_NAME, report_files

SECTIONS = ["recommendation", "strategies", "capacity", "memory", "iteration", "assumptions"]
PLOTS = ["frontier-l4", "goodput-l4", "gpus-needed", "cost", "memory", "iteration"]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves: the page must need no network
]
TIMEOUT_S = 60

CHECK = """
<script>
(() => {
  const result = {sections: [], plots: {}, broken: [], external: [], duplicateIds: []};
  for (const s of document.querySelectorAll('section[id]')) {
    const box = s.getBoundingClientRect();
    if (box.height > 0) result.sections.push(s.id);
  }
  for (const f of document.querySelectorAll('figure.plot')) {
    const svg = f.querySelector('svg');
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    result.plots[f.dataset.plot] = {
      width: box.width, height: box.height,
      texts: svg ? svg.querySelectorAll('text').length : 0,
      shapes: svg ? svg.querySelectorAll('path, use, rect').length : 0,
      caption: !!f.querySelector('figcaption'),
    };
  }
  for (const img of document.images) if (!img.complete || img.naturalWidth === 0) result.broken.push(img.src);
  for (const el of document.querySelectorAll('[src], link[href], [href^="http"], [href^="//"]'))
    result.external.push(el.outerHTML.slice(0, 80));
  const seen = new Set();
  for (const el of document.querySelectorAll('[id]')) {
    if (seen.has(el.id)) result.duplicateIds.push(el.id);
    seen.add(el.id);
  }
  const out = document.createElement('pre');
  out.id = 'tdplan-check';
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
})();
</script>
"""


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def run_chromium(binary: str, page: Path, profile: Path) -> subprocess.CompletedProcess[str]:
    args = [binary, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--dump-dom",
            page.as_uri()]  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


@pytest.fixture(scope="module")
def browser() -> str:
    binary = chromium()
    if binary is None:
        if os.environ.get("TDPLAN_REQUIRE_BROWSER"):
            pytest.fail("TDPLAN_REQUIRE_BROWSER is set but no Chromium is installed (apt-get install -y chromium)")
        pytest.skip("no Chromium: install Debian's `chromium` package to render the report in a browser")
    return binary


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = ReportSpec(
        model="llama-3.1-8b",
        fleets=("1xL4",),
        input_len=512,
        output_len=128,
        strategies=("colocated", "chunked"),
        prices=(("l4", 0.8),),
    )
    folder = tmp_path_factory.mktemp("report")
    for name, text in report_files(run(spec, workers=1)).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder / HTML_NAME


def test_no_console_messages(browser: str, page: Path, tmp_path: Path) -> None:
    result = run_chromium(browser, page, tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    assert '<section id="recommendation">' in result.stdout
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []


def test_every_section_and_plot_renders(browser: str, page: Path, tmp_path: Path) -> None:
    checked = tmp_path / "checked.html"
    checked.write_text(page.read_text(encoding="utf-8").replace("</body>", CHECK + "</body>"), encoding="utf-8")
    result = run_chromium(browser, checked, tmp_path / "profile")
    assert result.returncode == 0, result.stderr[-2000:]
    match = re.search(r'<pre id="tdplan-check">(.*?)</pre>', result.stdout, re.DOTALL)
    assert match, "the checking script did not run"
    report = json.loads(html.unescape(match.group(1)))
    assert set(SECTIONS) <= set(report["sections"])
    for plot in PLOTS:
        figure = report["plots"].get(plot)
        assert figure is not None, f"plot {plot} missing"
        assert figure["width"] > 200 and figure["height"] > 100, (plot, figure)
        assert figure["texts"] >= 3 and figure["shapes"] > 0 and figure["caption"], (plot, figure)
    assert report["broken"] == [] and report["external"] == [] and report["duplicateIds"] == []
