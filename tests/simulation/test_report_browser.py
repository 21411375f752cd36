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
