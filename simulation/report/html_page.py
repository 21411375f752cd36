"""The HTML page of the report: headline, per-symbol drill-down, charts across symbols, notes, then the tables.

The charts are plotly figures kept as JSON in the page and drawn by ``plotly.min.js``, which is written beside
the page from the installed plotly package (no network needed to open it). Tables sort on a header click.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass

from router_tuner.simulation.report.charts import Chart
from router_tuner.simulation.report.headline import Headline

PLOTLY_JS = "plotly.min.js"
"""The file name of plotly.js beside the page."""

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1300px;margin:1.5em auto;padding:0 1em;color:#222}
.headline{background:#f3f7fb;border-left:5px solid #1f77b4;padding:.8em 1.2em;margin:1em 0}
.headline .lead{font-size:1.25em;margin:.2em 0 .6em}
.caveat{color:#555;font-size:.92em}
nav a{margin-right:1em}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:1em}
figure{margin:0;border:1px solid #e4e4e4;padding:.4em}
figcaption{font-size:.88em;color:#444}
figcaption b{display:block;font-size:1.05em;color:#222}
details.symbol{border-top:2px solid #ddd;padding:.4em 0}
details.symbol>summary{font-size:1.3em;font-weight:600;cursor:pointer}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{cursor:pointer;background:#f5f5f5;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
dt{font-family:monospace;font-weight:600}
"""

_SCRIPT = """
(function () {
  var figures = JSON.parse(document.getElementById("figures").textContent);
  var drawn = 0;
  document.querySelectorAll("div.chart").forEach(function (div) {
    var spec = figures[div.dataset.figure];
    Plotly.newPlot(div, spec.data, spec.layout, {responsive: true, displaylogo: false});
    drawn += 1;
  });
  document.body.dataset.chartsDrawn = String(drawn);
  function number(text) {  // the number a cell starts with: 3.59, "[3.29, 3.91]", "+0.44 / -0.07", "86% / 84%"
    var match = /^\\s*\\[?\\s*([-+]?\\d+(?:\\.\\d+)?(?:e[-+]?\\d+)?)/i.exec(text);
    return match ? parseFloat(match[1]) : NaN;
  }
  document.querySelectorAll("table.sortable th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var table = th.closest("table"), body = table.tBodies[0];
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var index = Array.prototype.indexOf.call(th.parentNode.children, th);
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[index].textContent, y = b.cells[index].textContent;
        var nx = number(x), ny = number(y);
        if (isNaN(nx) !== isNaN(ny)) { return isNaN(nx) ? 1 : -1; }  // text (n/a) after the numbers, both ways
        var order = isNaN(nx) ? x.localeCompare(y) : nx - ny;
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
})();
"""


@dataclass(frozen=True, slots=True)
class TableSection:
    """A table of the report: title, header, rows, and what to say when it has no row."""

    title: str
    header: list[str]
    rows: list[list[str]]
    empty: str


@dataclass(frozen=True, slots=True)
class SymbolSection:
    """One symbol's drill-down: its name, one line that sums it up, and its charts."""

    symbol: str
    summary: str
    charts: list[Chart]


def _figure(chart: Chart) -> str:
    return (f"<figure><figcaption><b>{html.escape(chart.title)}</b>{html.escape(chart.caption)}</figcaption>"
            f"<div class='chart' id='{html.escape(chart.chart_id)}' data-figure='{html.escape(chart.chart_id)}'>"
            "</div></figure>")


def _table(section: TableSection) -> str:
    if not section.rows:
        return f"<h3>{html.escape(section.title)}</h3><p>{html.escape(section.empty)}</p>"
    head = "".join(f"<th>{html.escape(h)}</th>" for h in section.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in section.rows)
    return (f"<h3>{html.escape(section.title)}</h3><table class='sortable'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _figures_json(charts: Sequence[Chart]) -> str:
    """Every figure as one JSON object keyed by chart id, safe inside a <script> element."""
    specs = {c.chart_id: json.loads(c.figure.to_json()) for c in charts}
    return json.dumps(specs, separators=(",", ":")).replace("</", "<\\/")


def render(headline: Headline, arms: dict[str, str], symbols: Sequence[SymbolSection], overview: Sequence[Chart],
           headline_chart: Chart, notes: Sequence[str], tables: Sequence[TableSection]) -> str:
    """The whole page as one string."""
    charts = [headline_chart, *overview, *(c for s in symbols for c in s.charts)]
    ids = [c.chart_id for c in charts]
    if len(set(ids)) != len(ids):
        raise ValueError(f"two charts share an id: {sorted(i for i in ids if ids.count(i) > 1)}")
    per_symbol = "".join(f"<li>{html.escape(line)}</li>" for line in headline.per_symbol)
    body = [
        "<h1>router-tuner simulation report</h1>",
        f"<section class='headline' id='headline'><p class='lead'>{html.escape(headline.lead)}</p>"
        f"<ul>{per_symbol}</ul><p class='caveat'>{html.escape(headline.caveat)}</p></section>",
        _figure(headline_chart),
        "<nav>Drill-down: " + "".join(f"<a href='#symbol-{html.escape(s.symbol)}'>{html.escape(s.symbol)}</a>"
                                      for s in symbols) + "</nav>",
        "<h2>Arms in words</h2><dl>" + "".join(f"<dt>{html.escape(a)}</dt><dd>{html.escape(w)}</dd>"
                                               for a, w in arms.items()) + "</dl>",
        "<h2>Per symbol</h2>",
    ]
    for s in symbols:
        body.append(f"<details class='symbol' id='symbol-{html.escape(s.symbol)}' open><summary>"
                    f"{html.escape(s.symbol)}</summary><p>{html.escape(s.summary)}</p><div class='charts'>"
                    + "".join(_figure(c) for c in s.charts) + "</div></details>")
    body.append("<h2>Across symbols</h2><div class='charts'>" + "".join(_figure(c) for c in overview) + "</div>")
    body.append("<h2>How these numbers were made</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes)
                + "</ul>")
    body.append("<h2>Tables</h2><p>Click a column header to sort.</p>" + "".join(_table(t) for t in tables))
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>router-tuner simulation</title>"
            f"<style>{_STYLE}</style><script src='{PLOTLY_JS}'></script></head><body>{''.join(body)}"
            f"<script type='application/json' id='figures'>{_figures_json(charts)}</script>"
            f"<script>{_SCRIPT}</script></body></html>")
