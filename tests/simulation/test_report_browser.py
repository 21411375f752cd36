"""The report page in headless Chromium: every chart draws and the console stays silent (no error, no warning).

Chromium is driven by its command line (``--dump-dom`` with ``--enable-logging=stderr``: each console message
is one ``CONSOLE`` line on stderr); the tests skip, saying why, where no Chromium binary is installed
(``apt-get install -y chromium`` provides one).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from router_tuner.simulation.report.page import write_report
from tests.simulation.page_parts import parse_page
from tests.simulation.test_report import report_result

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_CONSOLE = re.compile(r":CONSOLE(?:\(\d+\)|:\d+)\]\s*(.*)")
_BROWSER = next((path for name in _BROWSERS if (path := shutil.which(name))), None)

needs_browser = pytest.mark.skipif(_BROWSER is None, reason=f"no Chromium binary on PATH (looked for {_BROWSERS}); "
                                                            "`apt-get install -y chromium` installs one")


@dataclass(frozen=True, slots=True)
class Rendered:
    dom: str
    console: list[str]


def render(page: Path, profile: Path) -> Rendered:
    """Load ``page`` in headless Chromium: the DOM after its scripts ran, and every console message."""
    assert _BROWSER is not None
    done = subprocess.run(
        [_BROWSER, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--enable-logging=stderr",
         "--v=0", f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return Rendered(dom=done.stdout, console=[m.group(1) for m in _CONSOLE.finditer(done.stderr)])


@needs_browser
def test_the_report_draws_every_chart_without_a_console_message(tmp_path: Path) -> None:
    report = write_report(report_result(("structured", "thompson"), shadow=("ETHUSDT",)), tmp_path / "report")
    charts = len(parse_page(report.html.read_text()).figures)
    rendered = render(report.html, tmp_path / "profile")
    assert rendered.console == []
    assert f'data-charts-drawn="{charts}"' in rendered.dom
    assert rendered.dom.count('class="main-svg"') >= charts  # plotly drew an SVG into every chart


@needs_browser
def test_a_header_click_sorts_intervals_by_their_numbers_and_text_last(tmp_path: Path) -> None:
    """The interval column ("[3.55, 4.33]") sorted as text, so a 10 bps spot interval came before a 3 bps one,
    and a column mixing "n/a" with numbers had no consistent order; now by the number a cell starts with, text
    after the numbers."""
    from router_tuner.simulation.report.html_page import _SCRIPT

    cells = ["[10.01, 10.05]", "n/a", "[3.55, 4.33]", "[-0.50, 0.20]", "+0.44 / -0.07", "9.5"]
    rows = "".join(f"<tr><td>{cell}</td></tr>" for cell in cells)
    page = tmp_path / "sort.html"
    page.write_text(
        "<!doctype html><html><body><div id='chart-free'></div>"
        f"<table class='sortable'><thead><tr><th>95% CI</th></tr></thead><tbody>{rows}</tbody></table>"
        "<script id='figures' type='application/json'>{}</script><script>var Plotly = {};</script>"
        f"<script>{_SCRIPT}</script><script>var th = document.querySelector('th'); th.click();"
        "document.body.dataset.ascending = Array.from(document.querySelectorAll('td')).map(td => td.textContent)"
        ".join('|'); th.click(); document.body.dataset.descending = Array.from(document.querySelectorAll('td'))"
        ".map(td => td.textContent).join('|');</script></body></html>")
    rendered = render(page, tmp_path / "profile")
    assert rendered.console == []
    ascending = re.search(r'data-ascending="([^"]*)"', rendered.dom).group(1).split("|")
    descending = re.search(r'data-descending="([^"]*)"', rendered.dom).group(1).split("|")
    assert ascending == ["[-0.50, 0.20]", "+0.44 / -0.07", "[3.55, 4.33]", "9.5", "[10.01, 10.05]", "n/a"]
    assert descending == ["[10.01, 10.05]", "9.5", "[3.55, 4.33]", "+0.44 / -0.07", "[-0.50, 0.20]", "n/a"]


@needs_browser
def test_the_check_sees_a_script_error(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<!doctype html><html><body><script>console.error('boom'); notDefined();</script></body></html>")
    console = render(page, tmp_path / "profile").console
    assert console[0].startswith('"boom"') and "notDefined is not defined" in console[1]


@needs_browser
def test_the_page_needs_plotly_js_beside_it(tmp_path: Path) -> None:
    report = write_report(report_result(()), tmp_path / "report")
    for asset in report.assets:
        asset.unlink()
    rendered = render(report.html, tmp_path / "profile")
    assert any("Plotly is not defined" in message for message in rendered.console)
    assert "data-charts-drawn" not in rendered.dom
