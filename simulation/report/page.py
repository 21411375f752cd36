"""The simulation report: an HTML page with interactive charts, a Markdown summary, and the JSON summary.

``summary_dict`` is the one source of the numbers: the ``--json`` line, the MLflow summary artifact,
the tables of both documents and the printed table all read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.offline

from router_tuner.router.atomic_file import refuse_unreplaceable, write_bytes_atomic
from router_tuner.simulation.job import SimulationResult
from router_tuner.simulation.learners import NO_GREEDY_ARM
from router_tuner.simulation.policies import ALWAYS_TAKER, FIXED_PREFIX
from router_tuner.simulation.report import breakdown, charts
from router_tuner.simulation.report.headline import Headline, headline
from router_tuner.simulation.report.html_page import PLOTLY_JS, SymbolSection, TableSection, render
from router_tuner.simulation.results import (
    MIN_CAPTURE_GAP_BPS,
    captured_share,
    cumulative_regret_bps,
    events_without_interval,
    regret_by_quarter_bps,
    segment_oracle_cost_bps,
)
from router_tuner.simulation.shadow import CHAMPION_SAME_ORDERS, LIVE_PHASE, STATIC_SAME_ORDERS


@dataclass(frozen=True, slots=True)
class Report:
    """Paths of what :func:`write_report` wrote (``assets``: what the page loads beside it)."""

    html: Path
    markdown: Path
    assets: tuple[Path, ...]


def summary_dict(result: SimulationResult) -> dict[str, Any]:
    """Per symbol and policy: orders, mean cost with CI, maker and fallback ratio, markout, regret against
    the best fixed arm; per learner its greedy and published arm and arm shares; the OPE rows."""
    symbols: dict[str, Any] = {}
    for symbol, sym in result.symbols.items():
        best = sym.runs[sym.best_fixed]
        oracle = oracle_costs(result, symbol)
        taker = sym.summaries[ALWAYS_TAKER].mean_cost_bps
        policies: dict[str, Any] = {}
        for name, s in sym.summaries.items():
            row = {k: v for k, v in s.to_dict().items() if k not in ("symbol", "policy")}
            row["cumulative_regret_vs_best_fixed_bps"] = float(cumulative_regret_bps(sym.runs[name], best)[-1])
            row["regret_per_order_by_quarter_bps"] = regret_by_quarter_bps(sym.runs[name], best)
            for key, reference in oracle.items():
                row[f"captured_share_of_taker_to_{key}_gap"] = (
                    None if s.mean_cost_bps is None or taker is None or reference is None
                    else captured_share(s.mean_cost_bps, taker, reference))
            policies[name] = row
        symbols[symbol] = {
            "market": sym.market.market, "replays": sym.replays, "best_fixed_arm": sym.best_fixed,
            "data": None if sym.market.data_summary is None else sym.market.data_summary.to_dict(),
            "oracle": {**{f"{key}_cost_bps": value for key, value in oracle.items()},
                       "segments": result.oracle_segments},
            "policies": policies,
            "learners": {name: outcome.to_dict() for name, outcome in sym.learners.items()},
        }
    return {
        "seed": result.options.seed, "orders_per_symbol": result.options.orders_per_symbol,
        "data_source": result.data_source, "engine": result.engine, "arms": list(result.arm_ids),
        "learners": list(result.options.learners),
        "default_learner": result.default_learner,
        "symbols": symbols, "ope": [c.to_dict() for sym in result.symbols.values() for c in sym.ope],
        "shadow": {"symbols": {symbol: sym.shadow.to_dict() for symbol, sym in result.symbols.items()
                               if sym.shadow is not None},
                   "not_simulated": list(result.shadow_not_simulated)},
    }


def oracle_costs(result: SimulationResult, symbol: str) -> dict[str, float | None]:
    """The two hindsight benchmarks of ``symbol``: the best fixed arm and the per-segment oracle (bps)."""
    sym = result.symbols[symbol]
    return {"best_fixed": sym.summaries[sym.best_fixed].mean_cost_bps,
            "segment_oracle": segment_oracle_cost_bps(sym.runs, result.oracle_segments)}


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table_rows(result: SimulationResult) -> tuple[list[str], list[list[str]]]:
    """The headline table: mean cost (bps) per symbol for the compared policies."""
    first = next(iter(result.symbols))
    columns = [n if not n.startswith(FIXED_PREFIX) else "best fixed arm"
               for n in charts.compared_policies(result, first)]
    rows = []
    for symbol, sym in result.symbols.items():
        names = charts.compared_policies(result, symbol)
        rows.append([symbol, *[_fmt(sym.summaries[n].mean_cost_bps) for n in names],
                     sym.best_fixed.removeprefix(FIXED_PREFIX)])
    return ["symbol", *columns, "best arm"], rows


def text_table(result: SimulationResult) -> str:
    """The printed per-symbol table of mean cost."""
    header, rows = table_rows(result)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in [header, *rows]]
    return "\n".join(lines)


def _detail_rows(result: SimulationResult) -> list[list[str]]:
    rows = []
    for symbol, sym in result.symbols.items():
        best = sym.runs[sym.best_fixed]
        for name in charts.compared_policies(result, symbol):
            s = sym.summaries[name]
            regret = float(cumulative_regret_bps(sym.runs[name], best)[-1])
            rows.append([symbol, name, str(s.orders), str(s.filled), _fmt(s.mean_cost_bps),
                         f"[{_fmt(s.cost_ci_low_bps)}, {_fmt(s.cost_ci_high_bps)}]", _fmt(s.maker_ratio),
                         _fmt(s.fallback_ratio), _fmt(s.mean_slippage_bps), _fmt(s.mean_markout_bps),
                         _fmt(regret, 1)])
    return rows


_DETAIL_HEADER = ["symbol", "policy", "orders", "filled", "mean cost bps", "95% CI", "maker ratio",
                  "fallback ratio", "slippage bps", "markout bps", "regret vs best fixed (sum bps)"]
_LEARNER_HEADER = ["symbol", "learner", "greedy arm", "published arm", "version", "versions", "rollbacks",
                   "drifts", "waiting drift (bps/s)", "exclusions / re-openings", "most chosen arm (share)",
                   "regret per order by quarter (bps)", "captured share of taker -> best fixed / -> segment oracle"]
_OPE_HEADER = ["symbol", "learner", "greedy arm", "logged", "truth (fixed run) bps", "estimator", "estimate bps",
               "CI", "covers truth", "ESS"]


def _learner_rows(result: SimulationResult) -> list[list[str]]:
    rows = []
    for symbol, sym in result.symbols.items():
        for name, o in sym.learners.items():
            top = max(o.arm_shares, key=o.arm_shares.__getitem__)
            quarters = regret_by_quarter_bps(sym.runs[o.policy], sym.runs[sym.best_fixed])
            taker, own = sym.summaries[ALWAYS_TAKER].mean_cost_bps, sym.summaries[o.policy].mean_cost_bps
            shares = [None if taker is None or own is None or ref is None else captured_share(own, taker, ref)
                      for ref in oracle_costs(result, symbol).values()]
            rows.append([symbol, name, o.greedy_arm or NO_GREEDY_ARM, o.final_arm, str(o.final_version),
                         str(o.versions_published), str(o.rollbacks), str(o.drifts_detected),
                         "n/a" if o.waiting_drift_bps_per_s is None else f"{o.waiting_drift_bps_per_s:+.3f}",
                         _safety_text(o.safety_changes), f"{top} ({o.arm_shares[top]:.0%})",
                         " / ".join(f"{q:+.2f}" for q in quarters),
                         " / ".join("n/a" if v is None else f"{v:.0%}" for v in shares)])
    return rows


def _safety_text(changes: dict[str, int]) -> str:
    """``3 / 2 (reprobe 1, regime 1)``: exclusions, then re-openings with their reasons."""
    reopened = {k.split(":", 1)[1]: n for k, n in changes.items() if k.startswith("reopened:")}
    why = ", ".join(f"{reason} {n}" for reason, n in sorted(reopened.items()))
    return f"{changes.get('excluded', 0)} / {sum(reopened.values())}" + (f" ({why})" if why else "")


def _ope_rows(result: SimulationResult) -> list[list[str]]:
    rows = []
    for sym in result.symbols.values():
        for c in sym.ope:
            truth = f"{c.truth_cost_bps:.2f} [{c.truth_ci_low_bps:.2f}, {c.truth_ci_high_bps:.2f}]"
            for name, est in c.estimates_bps().items():
                rows.append([c.symbol, c.learner, c.arm, str(c.report.n_events), truth, name, _fmt(est["cost_bps"]),
                             _interval_text(est),
                             "yes" if est["covers_truth"] else "no", _fmt(est["ess"], 1)])
    return rows


_SHADOW_HEADER = ["symbol", "learner", "went live", "after orders", "agreement at go-live", "candidate arm",
                  "OPE at go-live bps (CI)", "champion in OPE window bps (CI)", "learner live bps (CI)",
                  "champion same orders bps (CI)", "static same orders bps (CI)", "shadow = champion alone",
                  "budget-blocked decisions"]


def _ci(value: float | None, low: float | None, high: float | None) -> str:
    return f"{_fmt(value)} [{_fmt(low)}, {_fmt(high)}]"


def ope_estimate_text(est: Mapping[str, Any] | None) -> str:
    """An OPE estimate (a cost in bps) with its interval, as the shadow scenario's line and table show it."""
    return "n/a" if est is None else f"{_fmt(est['cost_bps'])} {_interval_text(est)}"


def _interval_text(est: Mapping[str, Any]) -> str:
    """An OPE estimate's interval; none for one that rests on a single logged event carrying weight: its bootstrap
    is that event alone, so it printed [x, x], as if the cost were known exactly (``router-tuner ope`` warns of the
    same, ``simulation.results.events_without_interval``)."""
    if (carrying := events_without_interval(est)) is not None:
        return f"[no interval: {carrying} logged event carrying weight]"
    return f"[{_fmt(est['ci_low_bps'])}, {_fmt(est['ci_high_bps'])}]"


def _shadow_rows(result: SimulationResult) -> list[list[str]]:
    """Per scenario symbol: how and when it went live, the OPE value then, and the live costs beside it."""
    rows = []
    for symbol, sym in result.symbols.items():
        if sym.shadow is None:
            continue
        block = sym.shadow.to_dict()
        at = block["at_go_live"] or {}
        est, acting = at.get("estimate"), at.get("acting")
        costs = block["costs"]

        def cost(name: str, data: dict[str, Any] = costs) -> str:
            c = data.get(name)
            return "n/a" if c is None else _ci(c["mean_cost_bps"], c["ci_low_bps"], c["ci_high_bps"])

        rows.append([symbol, block["learner"], block["went_live_by"] or "never", str(block["went_live_after_orders"]),
                     _fmt(at.get("agreement"), 3), at.get("candidate_arm", "n/a"),
                     ope_estimate_text(est),
                     "n/a" if acting is None else _ci(acting["cost_bps"], acting["ci_low_bps"], acting["ci_high_bps"]),
                     cost(LIVE_PHASE), cost(CHAMPION_SAME_ORDERS), cost(STATIC_SAME_ORDERS),
                     "yes" if block["shadow_phase_matches_champion"] else "NO",
                     f"{block['budget']['blocked_decisions']}/{block['live_orders']}"])
    return rows


def _shadow_notes(result: SimulationResult) -> list[str]:
    scenarios = [sym.shadow.scenario for sym in result.symbols.values() if sym.shadow is not None]
    notes = []
    if scenarios:
        s = scenarios[0]
        command = (f"by the go-live command after {s.command_go_live_after_orders} orders when the gate has not "
                   "passed by then" if s.command_go_live_after_orders is not None else "never by command")
        notes.append(
            f"Shadow scenario: the tuner ({s.learner}) first watches a champion that routes the static policy with "
            f"{s.champion_explore_share:.0%} uniform exploration over the arms the tuner may choose from it "
            "(propensities logged). Why exploring: against a champion that always takes one arm the learner "
            "proposes arms it never saw, agreement stays near 0 and OPE has no support for any other arm. "
            f"It goes live automatically when the go-live gate passes (agreement and the {s.gate_estimator} lower "
            f"bound, tuner.json deployment.shadow), else {command}: the apprentice gate asks the learner to agree "
            "with the champion, so a learner that believes another arm is cheaper does not pass it on its own. "
            "'OPE at go-live' is the gate's estimate of the learner's best arm at the switch, on the champion's "
            "log; the live costs are measured on the orders after the switch, the champion's and the static "
            "policy's on exactly the same orders.")
    if result.shadow_not_simulated:
        notes.append(f"Shadow scenario symbols not simulated in this run: {', '.join(result.shadow_not_simulated)}.")
    return notes


def ope_coverage(result: SimulationResult) -> dict[str, tuple[int, int]]:
    """Per estimator: (intervals covering the truth, intervals) over every symbol and learner."""
    out: dict[str, tuple[int, int]] = {}
    for sym in result.symbols.values():
        for c in sym.ope:
            for name, est in c.estimates_bps().items():
                hit, total = out.get(name, (0, 0))
                out[name] = (hit + int(est["covers_truth"]), total + 1)
    return out


def _notes(result: SimulationResult) -> list[str]:
    sym = next(iter(result.symbols.values()))
    return [
        f"Data: {breakdown.public_data_source(result.data_source)}. Seed {result.options.seed}, "
        f"{result.options.orders_per_symbol} orders per "
        f"symbol, {_engine_note(result.engine, sym.replays)}; every policy routes the same intents.",
        "Cost = RouterEvent.cost_bps against the arrival mid, fees and the fallback leg included; "
        "markout = mid move against us after the last fill (positive is adverse).",
        "The best fixed arm is chosen in hindsight on the same intents it is scored on: an oracle, "
        "optimistic by construction; regret is measured against it.",
        "Learners: the tuner service (guardrails, reward filter, drift, rollback, publishing) with each learner; "
        "its greedy arm is the arm it expects to be cheapest at the end; its published arm moves at most one "
        "guardrail step per version.",
        "OPE: every configured estimator (the `router-tuner ope` code) scores always playing a learner's greedy "
        "arm on that learner's own log (its logged propensities); the truth is that arm's own fixed-arm run "
        "on the same intents. A learner that exploits leaves little evidence on other arms, so wide or "
        "missed intervals are a finding about the log, not a rounding error.",
        "Inverse (COIN-M) contracts are simulated in contract counts; USD amounts use each contract's USD value.",
    ]


def _capture_notes(result: SimulationResult) -> list[str]:
    """Why the learners table's captured share reads n/a where it does (``null`` in ``--json``): the reference is
    not cheaper than always-taker by ``MIN_CAPTURE_GAP_BPS``, so there is no gap to take a share of. The cell
    said n/a without a word, as if the share were missing."""
    if not any(sym.learners for sym in result.symbols.values()):
        return []
    names = {"best_fixed": "best fixed arm", "segment_oracle": "segment oracle"}
    out = []
    for symbol, sym in result.symbols.items():
        taker = sym.summaries[ALWAYS_TAKER].mean_cost_bps
        for key, reference in oracle_costs(result, symbol).items():
            if taker is None or reference is None:
                out.append(f"{symbol}: captured share of the taker -> {names[key]} gap is n/a: "
                           f"{'always-taker' if taker is None else 'the ' + names[key]} filled no order.")
            elif taker - reference < MIN_CAPTURE_GAP_BPS:
                out.append(f"{symbol}: captured share of the taker -> {names[key]} gap is n/a: the {names[key]} "
                           f"({reference:.2f} bps) is not cheaper than always-taker ({taker:.2f} bps) by "
                           f"{MIN_CAPTURE_GAP_BPS:g} bps, so a share of the gap would measure noise.")
    return out


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _tables(result: SimulationResult) -> list[TableSection]:
    header, rows = table_rows(result)
    return [
        TableSection("Mean cost per order (bps)", header, rows, ""),
        TableSection("Per policy", _DETAIL_HEADER, _detail_rows(result), ""),
        TableSection("Learners", _LEARNER_HEADER, _learner_rows(result), "No learner ran."),
        TableSection("Offline policy evaluation", _OPE_HEADER, _ope_rows(result),
                     "No learner ran: nothing to evaluate off-policy."),
        TableSection("Shadow scenario: shadow first, then live", _SHADOW_HEADER, _shadow_rows(result),
                     "No shadow scenario ran (router.json simulation.shadow_scenario.symbols, --shadow-symbols)."),
    ]


def _engine_note(engine: str, replays: int) -> str:
    """How the routes were replayed (``router.json`` ``simulation.engine``), in words."""
    if engine == "concurrent":
        return ("routed concurrently on one venue replay per symbol and policy: routes overlap, our orders share "
                "the queue and the displayed liquidity")
    return (f"routed on {replays} venue replays (lanes) per symbol and policy, started at different times so "
            "consecutive orders of one lane never overlap")


def _symbol_summary(result: SimulationResult, symbol: str) -> str:
    """One line on a symbol: its market, the best fixed arm in hindsight and the tuner's cost beside it."""
    sym = result.symbols[symbol]
    best = sym.summaries[sym.best_fixed]
    replays = f"{sym.replays} replays" if sym.replays > 1 else "one replay"
    line = (f"{sym.market.market} market, {len(sym.intents)} orders on {replays}. Best fixed arm in "
            f"hindsight: {sym.best_fixed.removeprefix(FIXED_PREFIX)} at {_fmt(best.mean_cost_bps)} bps "
            f"({breakdown.describe_arm(sym.best_fixed)}).")
    tuner = breakdown.tuner_policy(result)
    if tuner is not None:
        line += f" The tuner ({tuner}): {_fmt(sym.summaries[tuner].mean_cost_bps)} bps."
    return line


def _markdown(lead: Headline, arms: dict[str, str], notes: list[str], tables: list[TableSection]) -> str:
    md = ["# router-tuner simulation report", "", f"**{lead.lead}**", "", *[f"- {line}" for line in lead.per_symbol],
          "", lead.caveat, "", "Interactive charts and the per-symbol drill-down: report.html (open it beside "
          f"{PLOTLY_JS}).", "", "## Arms in words", "", *[f"- `{a}`: {w}" for a, w in arms.items()], "",
          "## How these numbers were made", "", *[f"- {n}" for n in notes], ""]
    for t in tables:
        md += [f"## {t.title}", "", _md_table(t.header, t.rows) if t.rows else t.empty, ""]
    return "\n".join(md)


REPORT_DOCUMENTS = ("report.md", "report.html")


def retire_report(out_dir: Path) -> None:
    """Delete the previous run's report documents before this run writes its outputs: each file is replaced
    atomically, but not the set together, so a kill between two of them left this run's report.html (and journal)
    beside the previous run's report.md (another seed, other numbers), all whole and nothing saying so. Now a kill
    leaves a document missing, never one of another run."""
    for name in REPORT_DOCUMENTS:
        refuse_unreplaceable(out_dir / name).unlink(missing_ok=True)  # a folder there is refused, as writing it is


def write_report(result: SimulationResult, out_dir: Path) -> Report:
    """Write ``report.html`` (with ``plotly.min.js`` beside it) and ``report.md`` into ``out_dir``; raises on a
    result without symbols."""
    if not result.symbols:
        raise ValueError("the simulation result holds no symbol: nothing to report")
    out_dir.mkdir(parents=True, exist_ok=True)
    lead = headline(result)
    arms = {arm: breakdown.describe_arm(arm) for arm in result.arm_ids}
    coverage = ", ".join(f"{name} {hit}/{total}" for name, (hit, total) in ope_coverage(result).items())
    notes = [*_notes(result), *([f"OPE intervals covering the truth: {coverage}."] if coverage else []),
             *_capture_notes(result), *_shadow_notes(result)]
    tables = _tables(result)
    symbols = [SymbolSection(symbol, _symbol_summary(result, symbol), charts.symbol_charts(result, symbol))
               for symbol in result.symbols]
    overview = [c for c in (charts.fixed_arm_chart(result), charts.learner_arms_chart(result)) if c is not None]
    page = render(lead, arms, symbols, overview, charts.savings_chart(result), notes, tables)
    retire_report(out_dir)  # a no-op after simulate's own call, which precedes the journal too
    plotly_js, html_path, md_path = out_dir / PLOTLY_JS, out_dir / "report.html", out_dir / "report.md"
    write_bytes_atomic(plotly_js, plotly.offline.get_plotlyjs().encode())
    write_bytes_atomic(html_path, page.encode())
    write_bytes_atomic(md_path, _markdown(lead, arms, notes, tables).encode())
    return Report(html=html_path, markdown=md_path, assets=(plotly_js,))
