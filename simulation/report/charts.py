"""The report's interactive charts (plotly figures), one function per chart; every axis carries a title with
its unit. The page (``simulation.report.html_page``) embeds them; nothing here writes a file.

The figures are built without plotly's per-property validation (:func:`_new_figure`): it copied and checked the
template and every trace property again at each update, most of the report's time. The tests build every figure
again through plotly's validation and require the same figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.basedatatypes import BaseTraceType

from router_tuner.simulation.job import SimulationResult, SymbolResult
from router_tuner.simulation.learners import NO_GREEDY_ARM
from router_tuner.simulation.policies import FIXED_PREFIX, LEARNER_PREFIX
from router_tuner.simulation.report import breakdown
from router_tuner.simulation.results import costs, events_without_interval
from router_tuner.simulation.shadow import (
    CHAMPION_ALL_ORDERS,
    CHAMPION_SAME_ORDERS,
    LIVE_PHASE,
    STATIC_SAME_ORDERS,
    ShadowOutcome,
    rolling_agreement,
)

ARM_CHOICE_WINDOW = 50
"""Orders per point of the arm-choice-over-time chart (presentation only; no trading decision reads it)."""

_DRAWN = np.float32
"""Long series are drawn from single precision: half the page's size, no difference on a screen."""

_TEMPLATE = pio.templates["plotly_white"]
"""The charts' look; a validated template object (a name would be kept as the name without validation)."""

_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
            "#17becf", "#393b79", "#637939")


@dataclass(frozen=True, slots=True)
class Chart:
    """One figure of the page: a stable element id, a heading, one sentence on how to read it, the figure."""

    chart_id: str
    title: str
    caption: str
    figure: go.Figure


def compared_policies(result: SimulationResult, symbol: str) -> list[str]:
    """The policies each chart shows: baselines, the best fixed arm, then learners (fixed arms omitted)."""
    sym = result.symbols[symbol]
    names = [n for n in sym.runs if not n.startswith(FIXED_PREFIX)]
    return [*names[:3], sym.best_fixed, *names[3:]]


def policy_colours(result: SimulationResult) -> dict[str, str]:
    """One colour per policy name, the same on every chart (the best fixed arm of any symbol is black)."""
    first = next(iter(result.symbols))
    names = [n for n in compared_policies(result, first) if not n.startswith(FIXED_PREFIX)]
    colours = {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(names)}
    return colours | {sym.best_fixed: "#000000" for sym in result.symbols.values()}


def _new_figure(*traces: BaseTraceType) -> go.Figure:
    """An empty figure (or one of ``traces``) that keeps what the chart sets as it is set, unvalidated."""
    return go.Figure(list(traces), _validate=False)


def _layout(figure: go.Figure, *, x: str, y: str, height: int = 360, **extra: Any) -> go.Figure:
    figure.update_layout(template=_TEMPLATE, height=height, margin={"l": 60, "r": 20, "t": 30, "b": 50},
                         legend={"font": {"size": 11}}, xaxis_title_text=x, yaxis_title_text=y, **extra)
    figure.update_yaxes(automargin=True)  # long category labels (learner: arm) push the plot right, not off-page
    return figure


def _zero_line(figure: go.Figure) -> None:
    """A grey line at y = 0 across the plot (``add_hline``'s shape; unvalidated, ``add_hline`` would also leave an
    empty annotation list in the layout)."""
    figure.add_shape(type="line", xref="x domain", x0=0, x1=1, yref="y", y0=0.0, y1=0.0,
                     line={"color": "#888", "width": 1})


def _segments(lows: Sequence[float], highs: Sequence[float], ys: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """x and y of horizontal interval lines, None-separated, for one scatter trace."""
    xs: list[Any] = []
    yy: list[Any] = []
    for low, high, y in zip(lows, highs, ys, strict=True):
        xs += [low, high, None]
        yy += [y, y, None]
    return xs, yy


def savings_chart(result: SimulationResult) -> Chart:
    """Per symbol, the tuner's saving per order against the static policy and against always-taker."""
    figure = _new_figure()
    for (baseline, rows), colour in zip(breakdown.savings(result).items(), ("#1f77b4", "#ff7f0e"), strict=True):
        figure.add_bar(x=[r.symbol for r in rows], y=[r.bps for r in rows], name=f"vs {baseline}",
                       marker_color=colour, customdata=[[r.usd_per_million, r.baseline_cost_bps, r.tuner_cost_bps]
                                                        for r in rows],
                       hovertemplate=("%{x}: saves %{y:.2f} bps = %{customdata[0]:,.0f} USD per 1M notional<br>"
                                      f"{baseline} %{{customdata[1]:.2f}} bps, tuner %{{customdata[2]:.2f}} bps"
                                      "<extra></extra>"))
    _zero_line(figure)
    tuner = breakdown.tuner_policy(result) or "no learner"
    return Chart("headline-savings", "What the tuner saves per order",
                 f"Mean cost of the baseline minus that of {tuner} (bps; 1 bps = 100 USD per 1M USD notional). "
                 "Above zero the tuner is cheaper.",
                 _layout(figure, x="symbol", y="saving per order (bps, positive = tuner cheaper)", barmode="group"))


def mean_cost_chart(result: SimulationResult, symbol: str) -> Chart:
    """Mean cost per filled order with its 95% bootstrap interval, per compared policy."""
    sym = result.symbols[symbol]
    names = [n for n in compared_policies(result, symbol) if sym.summaries[n].mean_cost_bps is not None]
    means = [sym.summaries[n].mean_cost_bps for n in names]
    lows = [sym.summaries[n].cost_ci_low_bps if sym.summaries[n].cost_ci_low_bps is not None else m
            for n, m in zip(names, means, strict=True)]
    highs = [sym.summaries[n].cost_ci_high_bps if sym.summaries[n].cost_ci_high_bps is not None else m
             for n, m in zip(names, means, strict=True)]
    xs, ys = _segments(lows, highs, names)
    colours = policy_colours(result)
    figure = _new_figure()
    figure.add_scatter(x=xs, y=ys, mode="lines", line={"color": "#999", "width": 3}, name="95% CI",
                       hoverinfo="skip")
    figure.add_scatter(x=means, y=names, mode="markers", name="mean cost",
                       marker={"size": 10, "color": [colours.get(n, "#000") for n in names]},
                       customdata=list(zip(lows, highs, strict=True)),
                       hovertemplate="%{y}: %{x:.2f} bps [%{customdata[0]:.2f}, %{customdata[1]:.2f}]<extra></extra>")
    figure.update_yaxes(autorange="reversed")
    return Chart(f"{symbol}-mean-cost", "Mean cost per order",
                 "Dots: mean cost per filled order against the arrival mid, fees and fallback included; grey: "
                 "95% bootstrap interval. Lower is better.",
                 _layout(figure, x="mean cost per order (bps, lower is better)", y="policy", showlegend=False))


def decomposition_chart(result: SimulationResult, symbol: str) -> Chart:
    """Fee, slippage and fallback parts of each compared policy's mean cost (stacked), markout beside it."""
    sym = result.symbols[symbol]
    parts = {n: p for n in compared_policies(result, symbol) if (p := breakdown.cost_parts(sym, n)) is not None}
    names = list(parts)
    figure = _new_figure()
    for label, attribute, colour in (("fee", "fee", "#9467bd"), ("slippage", "slippage", "#17becf"),
                                     ("fallback leg", "fallback", "#d62728")):
        figure.add_bar(x=[getattr(parts[n], attribute) for n in names], y=names, orientation="h", name=label,
                       marker_color=colour, hovertemplate=f"%{{y}} {label}: %{{x:.2f}} bps<extra></extra>")
    figure.add_scatter(x=[parts[n].total for n in names], y=names, mode="markers", name="total cost",
                       marker={"symbol": "line-ns-open", "size": 16, "color": "black", "line": {"width": 2}},
                       hovertemplate="%{y} total: %{x:.2f} bps<extra></extra>")
    markout = [n for n in names if parts[n].markout is not None]
    figure.add_scatter(x=[parts[n].markout for n in markout], y=markout, mode="markers",
                       name="markout (not in cost)", marker={"symbol": "diamond", "size": 9, "color": "#ff7f0e"},
                       hovertemplate="%{y} markout: %{x:.2f} bps<extra></extra>")
    figure.update_yaxes(autorange="reversed")
    return Chart(f"{symbol}-decomposition", "Where the cost comes from",
                 "Per filled order: fees of the maker or taker fills (rebates negative), their price against the "
                 "arrival mid, and what the taker fallback legs cost (price and fee); the bars add up to the mean "
                 "cost (black tick). Markout (the mid's move against us after the last fill) is shown beside it.",
                 _layout(figure, x="bps per filled order", y="policy", barmode="relative", height=380))


def fill_rate_chart(result: SimulationResult, symbol: str) -> Chart:
    """Maker fill rate and mean cost of each maker-first fixed arm against its posting offset."""
    rows = breakdown.fill_rate_by_offset(result.symbols[symbol])
    offsets = [r.offset_bps for r in rows]
    figure = _new_figure()
    figure.add_scatter(x=offsets, y=[r.fill_rate for r in rows], mode="lines+markers", name="maker fill rate",
                       customdata=[[r.arm, r.maker_filled, r.maker_first_orders] for r in rows],
                       hovertemplate=("%{customdata[0]}: %{customdata[1]} of %{customdata[2]} posts filled "
                                      "(%{y:.0%})<extra></extra>"))
    figure.add_scatter(x=offsets, y=[r.mean_cost_bps for r in rows], mode="lines+markers", yaxis="y2",
                       name="mean cost", line={"dash": "dot", "color": "#d62728"},
                       hovertemplate="offset %{x} bps: %{y:.2f} bps per order<extra></extra>")
    _layout(figure, x="posting offset behind the best price (bps)", y="maker fill rate (share of posts)")
    figure.update_layout(yaxis={"range": [0, 1.05], "tickformat": ".0%"},
                         yaxis2={"title": {"text": "mean cost per order (bps)"}, "overlaying": "y", "side": "right",
                                 "tickformat": ".2f"},
                         margin={"r": 70}, legend={"orientation": "h", "y": 1.12})
    return Chart(f"{symbol}-fill-rate", "Fill rate against offset",
                 "Fixed maker-first arms: the share of post-only orders that filled without the taker fallback "
                 "(left axis) and the arm's mean cost (right axis). Posting deeper fills less often.", figure)


def regret_chart(result: SimulationResult, symbol: str) -> Chart:
    """Cumulative regret against the best fixed arm over the run, with a 95% band, per compared policy."""
    sym = result.symbols[symbol]
    best = costs(sym.runs[sym.best_fixed].events)
    colours = policy_colours(result)
    figure = _new_figure()
    for name in compared_policies(result, symbol):
        if name == sym.best_fixed:
            continue
        band = breakdown.regret_band(costs(sym.runs[name].events), best)
        x = np.arange(1, band.regret.size + 1)
        colour = colours.get(name, "#444")
        figure.add_scatter(x=np.concatenate([x, x[::-1]]),
                           y=np.concatenate([band.high, band.low[::-1]]).astype(_DRAWN),
                           fill="toself", fillcolor=colour, opacity=0.12, line={"width": 0}, hoverinfo="skip",
                           legendgroup=name, showlegend=False)
        figure.add_scatter(x=x, y=band.regret.astype(_DRAWN), mode="lines", name=name, legendgroup=name,
                           line={"color": colour, "width": 1.6},
                           hovertemplate=f"{name} after %{{x}} orders: %{{y:.1f}} bps<extra></extra>")
    _zero_line(figure)
    return Chart(f"{symbol}-regret", f"Regret against the best fixed arm ({sym.best_fixed.removeprefix(FIXED_PREFIX)})",
                 "Sum over orders of the policy's cost minus the hindsight-best fixed arm's; the shaded band is a "
                 "pointwise 95% normal band of that sum. A learner that learns flattens out; click a legend entry "
                 "to hide a policy.",
                 _layout(figure, x="orders routed (arrival order)", y="cumulative regret (bps, sum over orders)",
                         height=400))


def arm_choice_chart(result: SimulationResult, symbol: str) -> Chart | None:
    """The tuner's arm choice over the run: share of each arm among its last orders; None without a learner."""
    tuner = breakdown.tuner_policy(result)
    if tuner is None:
        return None
    sym = result.symbols[symbol]
    arms = list(result.arm_ids)
    shares = breakdown.rolling_arm_shares(sym.runs[tuner].events, arms, ARM_CHOICE_WINDOW)
    window = _window_words(shares.shape[0])
    x = np.arange(1, shares.shape[0] + 1)
    figure = _new_figure()
    for column, arm in enumerate(arms):
        figure.add_scatter(x=x, y=shares[:, column].astype(_DRAWN), mode="lines", stackgroup="arms", name=arm,
                           line={"width": 0.5, "color": _PALETTE[column % len(_PALETTE)]},
                           hovertemplate=f"{arm}: %{{y:.0%}} of the last orders up to %{{x}}<extra></extra>")
    _layout(figure, x="orders routed (arrival order)", y=f"share of {window}")
    figure.update_layout(yaxis={"range": [0, 1], "tickformat": ".0%"})
    outcome = sym.learners[tuner.removeprefix(LEARNER_PREFIX)]
    return Chart(f"{symbol}-arm-choice", f"Arm choice over time ({tuner})",
                 f"Which arm the tuner routed with, as a share of {window} (exploration included). Its final "
                 f"greedy arm is {outcome.greedy_arm or NO_GREEDY_ARM}; the best fixed arm in hindsight is "
                 f"{sym.best_fixed.removeprefix(FIXED_PREFIX)}.", figure)


def _window_words(orders: int) -> str:
    """What a rolling arm share is over: a run shorter than the window never has "the last 50 orders"."""
    if orders <= ARM_CHOICE_WINDOW:
        return "the orders so far"
    return f"the last {ARM_CHOICE_WINDOW} orders (the orders so far, before the {ARM_CHOICE_WINDOW}th)"


def ope_chart(result: SimulationResult, symbol: str) -> Chart | None:
    """Each estimator's cost estimate of each learner's greedy arm beside the arm's fixed-run truth; the axis
    is scaled on the bulk of the estimates and values beyond it are pinned to its edge. None without OPE."""
    sym = result.symbols[symbol]
    if not sym.ope:
        return None
    estimates = {(c.learner, name): est for c in sym.ope for name, est in c.estimates_bps().items()}
    low, high = breakdown.robust_range(
        [e["cost_bps"] for e in estimates.values()],
        [v for c in sym.ope for v in (c.truth_ci_low_bps, c.truth_ci_high_bps)])
    labels = [f"{c.learner.removeprefix(LEARNER_PREFIX)}: {c.arm}" for c in sym.ope]
    figure = _new_figure()
    xs, ys = _segments([c.truth_ci_low_bps for c in sym.ope], [c.truth_ci_high_bps for c in sym.ope], labels)
    figure.add_scatter(x=xs, y=ys, mode="lines", line={"color": "rgba(0,0,0,0.25)", "width": 14},
                       name="truth 95% CI (fixed run)", hoverinfo="skip")
    figure.add_scatter(x=[c.truth_cost_bps for c in sym.ope], y=labels, mode="markers", name="truth (fixed run)",
                       marker={"symbol": "line-ns-open", "size": 18, "color": "black", "line": {"width": 2}},
                       hovertemplate="truth %{x:.2f} bps<extra></extra>")
    names = list(sym.ope[0].report.estimates)
    for k, name in enumerate(names):
        rows = [(label, estimates[(c.learner, name)]) for label, c in zip(labels, sym.ope, strict=True)]
        values = [e["cost_bps"] for _, e in rows]
        shown = [min(max(v, low), high) for v in values]
        figure.add_scatter(
            x=shown, y=[label for label, _ in rows], mode="markers", name=name, cliponaxis=False,
            marker={"color": _PALETTE[k % len(_PALETTE)], "size": 9,
                    "symbol": ["circle" if low <= v <= high else ("triangle-right" if v > high else "triangle-left")
                               for v in values]},
            customdata=[[v, e["ci_low_bps"], e["ci_high_bps"], e["ess"]] for v, (_, e) in zip(values, rows,
                                                                                               strict=True)],
            hovertemplate=(f"{name}: %{{customdata[0]:.2f}} bps [%{{customdata[1]:.2f}}, %{{customdata[2]:.2f}}], "
                           "ESS %{customdata[3]:.1f}<extra></extra>"))
    figure.update_xaxes(range=[low, high])
    figure.update_yaxes(autorange="reversed")
    return Chart(f"{symbol}-ope", "Offline policy evaluation against known truth",
                 "Each estimator's cost of always playing a learner's greedy arm, computed on that learner's own "
                 "log, beside the arm's measured cost from its own fixed run (black tick, grey: 95% CI). The axis "
                 "fits the bulk of the estimates; a triangle at an edge is an estimate beyond it (hover for its "
                 "value and interval).",
                 _layout(figure, x="cost of always playing the arm (bps)", y="learner: greedy arm",
                         height=140 + 55 * len(labels)))


def shadow_agreement_chart(outcome: ShadowOutcome) -> Chart:
    """Rolling agreement of the learner's proposals with the champion's arm, the gate checks and go-live."""
    s = outcome.scenario
    x = np.arange(1, len(s.decisions) + 1)
    agrees = np.array([d.agrees for d in s.decisions], dtype=float)
    figure = _new_figure()
    figure.add_scatter(x=x, y=rolling_agreement(s.decisions, s.agreement_window), mode="lines",
                       name=f"agreement, last {s.agreement_window} proposals")
    figure.add_scatter(x=x, y=np.cumsum(agrees) / np.maximum(x, 1), mode="lines", line={"dash": "dash"},
                       name="agreement since start")
    checks = s.gate_checks
    figure.add_scatter(x=[c.after_orders for c in checks],
                       y=[c.evaluation.agreement if c.evaluation.agreement is not None else 0.0 for c in checks],
                       mode="markers", name="gate check (green passed, red failed)",
                       marker={"size": 9, "color": ["#2ca02c" if c.evaluation.passes else "#d62728" for c in checks]})
    figure.add_hline(y=s.min_agreement, line_dash="dot", line_color="#888",
                     annotation_text=f"gate threshold {s.min_agreement:g}")
    if s.went_live_by is not None:
        figure.add_vrect(x0=s.shadow_orders, x1=len(s.run.events), fillcolor="#1f77b4", opacity=0.08, line_width=0,
                         annotation_text=f"learner live (go-live by {s.went_live_by})")
    _layout(figure, x="orders routed (arrival order)", y="share of proposals = champion's arm")
    figure.update_layout(yaxis={"range": [0, 1.1]}, xaxis={"range": [0, len(s.run.events)]})
    return Chart(f"{s.symbol}-shadow-agreement", f"Shadow scenario: {s.learner} watching the champion",
                 "How often the learner proposed the arm the exploring champion routed; it goes live when the "
                 "gate passes or by the go-live command.", figure)


def shadow_cost_chart(outcome: ShadowOutcome) -> Chart:
    """The gate's OPE value at go-live and the live costs of learner, champion and static on the same orders."""
    s, block = outcome.scenario, outcome.to_dict()
    rows: list[tuple[str, dict[str, Any] | None, str]] = []
    at = block["at_go_live"]
    if at is not None:
        est = at["estimate"]
        carrying = events_without_interval(est)
        note = "" if carrying is None else f" ({carrying} event carrying weight: no interval)"
        rows.append((f"OPE at go-live ({s.gate_estimator}, {at['candidate_arm']}){note}", est, "cost_bps"))
        rows.append(("champion in OPE window (on-policy)", at["acting"], "cost_bps"))
    for name, label in ((LIVE_PHASE, "learner live"), (CHAMPION_SAME_ORDERS, "champion, same orders"),
                        (STATIC_SAME_ORDERS, "static, same orders"), (CHAMPION_ALL_ORDERS, "champion, all orders")):
        rows.append((label, block["costs"].get(name), "mean_cost_bps"))
    drawn = [(label, row, key) for label, row, key in rows if row is not None and row.get(key) is not None]
    values = [float(row[key]) for _, row, key in drawn]
    lows = [float(row["ci_low_bps"]) if row.get("ci_low_bps") is not None else v
            for (_, row, _), v in zip(drawn, values, strict=True)]
    highs = [float(row["ci_high_bps"]) if row.get("ci_high_bps") is not None else v
             for (_, row, _), v in zip(drawn, values, strict=True)]
    labels = [label for label, _, _ in drawn]
    xs, ys = _segments(lows, highs, labels)
    figure = _new_figure()
    figure.add_scatter(x=xs, y=ys, mode="lines", line={"color": "#999", "width": 3}, name="95% CI", hoverinfo="skip")
    figure.add_scatter(x=values, y=labels, mode="markers", marker={"size": 10, "color": "#1f77b4"}, name="cost",
                       hovertemplate="%{y}: %{x:.2f} bps<extra></extra>")
    figure.update_yaxes(autorange="reversed")
    live = f"live after {s.shadow_orders} orders by {s.went_live_by}" if s.went_live_by else "never went live"
    return Chart(f"{s.symbol}-shadow-costs", f"Shadow scenario: OPE at go-live against live costs ({live})",
                 "The gate's estimate when the learner went live, then what the learner, the champion and the "
                 "static policy cost on exactly the orders after the switch.",
                 _layout(figure, x="cost per order (bps, lower is better)", y="measurement", showlegend=False))


def fixed_arm_chart(result: SimulationResult) -> Chart:
    """Mean cost of every fixed arm on every symbol, coloured by the excess over the symbol's best arm."""
    symbols, arms = list(result.symbols), list(result.arm_ids)
    grid = np.array([[_mean_or_nan(result.symbols[s], f"{FIXED_PREFIX}{a}") for a in arms] for s in symbols])
    excess = grid - np.nanmin(grid, axis=1, keepdims=True)  # per symbol: spot and perp fees differ
    figure = _new_figure(go.Heatmap(z=excess, x=arms, y=symbols, colorscale="Viridis", reversescale=True,
                                  text=np.round(grid, 2), texttemplate="%{text}",
                                  colorbar={"title": {"text": "bps above the<br>symbol's best arm"}},
                                  hovertemplate="%{y} %{x}: %{text} bps (+%{z:.2f})<extra></extra>"))
    return Chart("fixed-arms", "Every fixed arm on every symbol",
                 "Mean cost (bps, in the cells) of always routing one arm; colour: excess over the symbol's "
                 "cheapest arm, which is the best fixed arm in hindsight.",
                 _layout(figure, x="arm (see 'Arms in words')", y="symbol", height=120 + 45 * len(symbols)))


def learner_arms_chart(result: SimulationResult) -> Chart | None:
    """Share of each learner's orders routed with each arm, one row per (symbol, learner); None without one."""
    if not result.options.learners:
        return None
    arms = list(result.arm_ids)
    rows = [(symbol, name) for symbol, sym in result.symbols.items() for name in sym.learners]
    shares = np.array([[result.symbols[s].learners[n].arm_shares[a] for a in arms] for s, n in rows])
    figure = _new_figure(go.Heatmap(z=shares, x=arms, y=[f"{s} {n}" for s, n in rows], colorscale="Blues", zmin=0,
                                  zmax=1, text=np.round(100 * shares).astype(int), texttemplate="%{text}",
                                  colorbar={"title": {"text": "share of the<br>learner's orders"},
                                            "tickformat": ".0%"},
                                  hovertemplate="%{y} %{x}: %{z:.1%}<extra></extra>"))
    figure.update_yaxes(autorange="reversed")
    return Chart("learner-arms", "Learners' arm choices",
                 "Share of each learner's orders routed with each arm over the whole run (cells: %).",
                 _layout(figure, x="arm (see 'Arms in words')", y="symbol and learner", height=140 + 22 * len(rows)))


def _mean_or_nan(sym: SymbolResult, policy: str) -> float:
    value = sym.summaries[policy].mean_cost_bps
    return np.nan if value is None else value


def symbol_charts(result: SimulationResult, symbol: str) -> list[Chart]:
    """The drill-down of one symbol, in reading order (charts that do not apply are left out)."""
    sym = result.symbols[symbol]
    charts = [mean_cost_chart(result, symbol), decomposition_chart(result, symbol), fill_rate_chart(result, symbol),
              regret_chart(result, symbol), arm_choice_chart(result, symbol), ope_chart(result, symbol)]
    if sym.shadow is not None:
        charts += [shadow_agreement_chart(sym.shadow), shadow_cost_chart(sym.shadow)]
    return [c for c in charts if c is not None]

