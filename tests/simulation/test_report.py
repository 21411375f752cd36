"""The report page's structure: headline first, one drill-down per symbol, every chart with titled axes, no
absolute path, tables last and sortable, plotly.js beside the page; the Markdown and printed tables."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import plotly.graph_objects as go
import plotly.offline
import pytest

from router_tuner.config.loader import load_config
from router_tuner.simulation.job import SimulationOptions, SimulationResult, simulate
from router_tuner.simulation.markets import synthetic_markets
from router_tuner.simulation.policies import ALWAYS_TAKER
from router_tuner.simulation.report import charts
from router_tuner.simulation.report.page import ope_coverage, text_table, write_report
from router_tuner.tuner.factory import build_grid
from tests.simulation.page_parts import axis_titles, parse_page

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def report_result(learners: tuple[str, ...], data_source: str = "synthetic",
                  shadow: tuple[str, ...] = ()) -> SimulationResult:
    config = load_config()
    options = SimulationOptions(symbols=SYMBOLS, orders_per_symbol=30, seed=2, data_dir=None, learners=learners,
                                shadow_symbols=shadow)
    return simulate(config, synthetic_markets(config, options.symbols, options.seed), options,
                    build_grid(config.tuner, config.router), data_source=data_source)


@pytest.fixture(scope="module")
def learned() -> SimulationResult:
    return report_result(("structured", "thompson", "ucb", "linucb"), data_source="recorded:/home/someone/data/binance")


def test_page_leads_with_the_headline_and_drills_down_per_symbol(learned: SimulationResult, tmp_path: Path) -> None:
    report = write_report(learned, tmp_path)
    page = report.html.read_text()
    parts = parse_page(page)
    assert parts.order[0] == ("headline", "headline")
    text = " ".join(parts.text)
    assert "the tuner (learner:structured)" in text and "against the static policy" in text
    assert "USD per 1M notional" in text and "against always-taker" in text
    assert "held-out" in text  # recorded data: the in-sample caveat names the honest comparison
    assert parts.ids("symbol") == [f"symbol-{s}" for s in SYMBOLS]
    for symbol in SYMBOLS:
        charts = [c for c in parts.ids("chart") if c.startswith(f"{symbol}-")]
        assert charts == [f"{symbol}-{kind}" for kind in ("mean-cost", "decomposition", "fill-rate", "regret",
                                                          "arm-choice", "ope")]
    assert "o0.50_b0.00" in text and "post-only 0.50 bps behind the best price" in text  # arms in words


def test_every_chart_has_data_and_titled_axes(learned: SimulationResult, tmp_path: Path) -> None:
    parts = parse_page(write_report(learned, tmp_path).html.read_text())
    assert set(parts.figures) == set(parts.ids("chart")) and len(parts.figures) == 1 + 2 * 6 + 2
    for chart_id, figure in parts.figures.items():
        assert figure["data"], chart_id
        titles = axis_titles(figure)
        assert titles and all(titles.values()), (chart_id, titles)
    fill_rate = parts.figures["BTCUSDT-fill-rate"]
    assert axis_titles(fill_rate) == {"xaxis": "posting offset behind the best price (bps)",
                                      "yaxis": "maker fill rate (share of posts)",
                                      "yaxis2": "mean cost per order (bps)"}


def test_tables_come_last_and_sort(learned: SimulationResult, tmp_path: Path) -> None:
    parts = parse_page(write_report(learned, tmp_path).html.read_text())
    kinds = [kind for kind, _ in parts.order]
    assert kinds.index("table") > max(i for i, kind in enumerate(kinds) if kind == "chart")
    assert len(parts.table_classes) == 5 - 1  # no shadow scenario ran: its section says so instead of a table
    assert all(c == "sortable" for c in parts.table_classes)


def test_page_works_offline_and_shows_no_absolute_path(learned: SimulationResult, tmp_path: Path) -> None:
    report = write_report(learned, tmp_path)
    page, markdown = report.html.read_text(), report.markdown.read_text()
    parts = parse_page(page)
    assert parts.script_sources == ["plotly.min.js"]  # a relative file, no CDN
    assert report.assets == (tmp_path / "plotly.min.js",)
    assert report.assets[0].read_text() == plotly.offline.get_plotlyjs()
    for document in (page, markdown):
        assert "/home/someone" not in document and str(tmp_path) not in document
        assert re.search(r"(?<![\w.:/])/(home|tmp|work|root|usr|var)/", document) is None
        assert "recorded: binance" in document


def test_ope_axis_is_not_squashed_by_an_outlier(learned: SimulationResult, tmp_path: Path) -> None:
    parts = parse_page(write_report(learned, tmp_path).html.read_text())
    for symbol in SYMBOLS:
        figure = parts.figures[f"{symbol}-ope"]
        low, high = figure["layout"]["xaxis"]["range"]
        truths = next(t for t in figure["data"] if t["name"] == "truth (fixed run)")["x"]
        assert all(low < t < high for t in truths)
        for trace in figure["data"][2:]:  # the estimators: drawn inside the axis, the true value in the hover data
            assert all(low <= x <= high for x in trace["x"])
            pinned = [s != "circle" for s in trace["marker"]["symbol"]]
            actual = [row[0] for row in trace["customdata"]]
            assert [not (low <= v <= high) for v in actual] == pinned


def test_markdown_and_printed_table(learned: SimulationResult, tmp_path: Path) -> None:
    markdown = write_report(learned, tmp_path).markdown.read_text()
    assert markdown.startswith("# router-tuner simulation report\n\n**Over 2 symbol(s), the tuner")
    assert "covers truth" in markdown and "learner:linucb" in markdown and "report.html" in markdown
    table = text_table(learned)
    assert "BTCUSDT" in table and "always_taker" in table and "best fixed arm" in table
    assert "learner:thompson" in table
    coverage = ope_coverage(learned)
    assert {"ips", "snips", "dm", "dr"} <= set(coverage)
    assert all(total == 2 * 4 and 0 <= hit <= total for hit, total in coverage.values())


def test_report_without_learners_says_so(tmp_path: Path) -> None:
    report = write_report(report_result(()), tmp_path)
    parts = parse_page(report.html.read_text())
    assert "No learner ran in this simulation" in " ".join(parts.text)
    assert not [c for c in parts.ids("chart") if c.endswith(("-arm-choice", "-ope")) or c == "learner-arms"]
    assert "synthetic" in " ".join(parts.text)
    assert "nothing to evaluate off-policy" in report.markdown.read_text()


def test_report_refuses_an_empty_result(tmp_path: Path) -> None:
    result = report_result(())
    empty = type(result)(options=result.options, data_source="synthetic", symbols={}, arm_ids=result.arm_ids,
                         learner_runs=(), default_learner=result.default_learner,
                         oracle_segments=result.oracle_segments, engine=result.engine)
    with pytest.raises(ValueError, match="no symbol"):
        write_report(empty, tmp_path)


def test_the_arm_choice_chart_says_what_its_shares_are_over(learned: SimulationResult) -> None:
    """A 30-order run was labelled "share of the last 50 orders" (a 5-order run too): the share is over the orders
    so far until the window fills."""
    chart = charts.arm_choice_chart(learned, SYMBOLS[0])
    assert chart is not None and "as a share of the orders so far (exploration" in chart.caption
    assert chart.figure.layout.yaxis.title.text == "share of the orders so far"
    assert "last 50" not in chart.caption
    longer = charts._window_words(charts.ARM_CHOICE_WINDOW + 1)
    assert longer == "the last 50 orders (the orders so far, before the 50th)"


def test_every_chart_is_what_plotly_validation_makes_of_it() -> None:
    """The charts are built without plotly's per-property validation: each figure built again through it (as the
    charts were before) is the same figure, field by field."""
    result = report_result(("structured", "ucb"), shadow=("BTCUSDT",))
    learner_arms = charts.learner_arms_chart(result)
    assert learner_arms is not None
    built = [charts.savings_chart(result), charts.fixed_arm_chart(result), learner_arms,
             *(chart for symbol in result.symbols for chart in charts.symbol_charts(result, symbol))]
    per_symbol = ("mean-cost", "decomposition", "fill-rate", "regret", "arm-choice", "ope")
    assert {chart.chart_id for chart in built} == {
        "headline-savings", "fixed-arms", "learner-arms", *(f"{s}-{kind}" for s in SYMBOLS for kind in per_symbol),
        "BTCUSDT-shadow-agreement", "BTCUSDT-shadow-costs"}, "every kind of chart"
    for chart in built:
        fast = json.loads(chart.figure.to_json())
        assert fast["layout"]["template"]["layout"]["plot_bgcolor"] == "white", chart.chart_id
        assert json.loads(go.Figure(chart.figure.to_dict()).to_json()) == fast, chart.chart_id


def test_the_validation_comparison_sees_what_plotly_would_change() -> None:
    """An unvalidated figure keeps a template's name where plotly would expand it: the comparison above fails on
    such a figure (why the charts hold the template object, not its name)."""
    named = go.Figure(_validate=False).update_layout(template="plotly_white")
    assert json.loads(named.to_json())["layout"]["template"] == "plotly_white"
    assert json.loads(go.Figure(named.to_dict()).to_json()) != json.loads(named.to_json())


def test_a_captured_share_left_out_says_why(learned: SimulationResult, tmp_path: Path) -> None:
    """Where always-taker costs what the best fixed arm costs (spot), the learners table's captured share is n/a
    (``null`` in ``--json``): the report says why. It said n/a without a word, as if the share were missing."""
    sym = learned.symbols["BTCUSDT"]
    best = sym.summaries[sym.best_fixed]
    taker = dataclasses.replace(sym.summaries[ALWAYS_TAKER], mean_cost_bps=best.mean_cost_bps + 0.05)
    symbols = {**learned.symbols, "BTCUSDT": dataclasses.replace(sym, summaries={**sym.summaries,
                                                                                 ALWAYS_TAKER: taker})}
    report = write_report(dataclasses.replace(learned, symbols=symbols), tmp_path)
    markdown = report.markdown.read_text()
    learner_rows = [line for line in markdown.splitlines() if line.startswith("| BTCUSDT | structured |")]
    assert learner_rows and learner_rows[0].rstrip(" |").split("| ")[-1].startswith("n/a /")
    assert ("BTCUSDT: captured share of the taker -> best fixed arm gap is n/a: the best fixed arm "
            f"({best.mean_cost_bps:.2f} bps) is not cheaper than always-taker ({taker.mean_cost_bps:.2f} bps) by "
            "0.1 bps, so a share of the gap would measure noise.") in markdown
    assert "ETHUSDT: captured share" not in markdown  # a symbol with a gap to share gets no note
    assert "captured share of the taker -&gt; best fixed arm gap is n/a" in report.html.read_text()


def test_an_ope_estimate_on_one_event_is_tabled_without_an_interval(learned: SimulationResult,
                                                                      tmp_path: Path) -> None:
    """An OPE row whose estimate rests on one logged event carrying weight (a learner that explored its greedy arm
    once in a short run) read `3.57 | [3.57, 3.57]`, a zero-width interval, as if the cost were known exactly."""
    from router_tuner.simulation.report.page import _ope_rows

    rows = _ope_rows(learned)
    assert rows and all(r[7].startswith("[") and r[7].endswith("]") for r in rows)
    comp = learned.symbols["BTCUSDT"].ope[0]
    name, est = next(iter(comp.report.estimates.items()))
    one = dataclasses.replace(est, n_nonzero_weight=1, ci_low=est.value, ci_high=est.value)
    lone = dataclasses.replace(comp, report=dataclasses.replace(comp.report, estimates={name: one}))
    sym = learned.symbols["BTCUSDT"]
    symbols = {"BTCUSDT": dataclasses.replace(sym, ope=[lone])}
    (row,) = _ope_rows(dataclasses.replace(learned, symbols=symbols))
    assert row[7] == "[no interval: 1 logged event carrying weight]"
