"""The report's PNG plots (matplotlib, Agg backend: no display needed), one function per figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from router.atomic_file import atomic_path
from simulation.job import SimulationResult
from simulation.policies import FIXED_PREFIX, LEARNER_PREFIX
from simulation.results import costs, cumulative_regret_bps
from simulation.shadow import (
    CHAMPION_ALL_ORDERS,
    CHAMPION_SAME_ORDERS,
    LIVE_PHASE,
    STATIC_SAME_ORDERS,
    rolling_agreement,
)


def compared_policies(result: SimulationResult, symbol: str) -> list[str]:
    """The policies each plot shows: baselines, the best fixed arm, then learners (fixed arms omitted)."""
    sym = result.symbols[symbol]
    names = [n for n in sym.runs if not n.startswith(FIXED_PREFIX)]
    return [*names[:3], sym.best_fixed, *names[3:]]


def _grid(n: int, width: float = 5.2, height: float = 3.6) -> tuple[plt.Figure, list[plt.Axes]]:
    """Up to three panels a row, one per symbol; unused panels hidden."""
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _save(fig: plt.Figure, path: Path, tight: bool = True) -> Path:
    """Write ``fig`` as PNG atomically (a rerun never leaves half an image) and release it, even on failure."""
    try:
        if tight:
            fig.tight_layout()
        with atomic_path(path) as temporary:
            fig.savefig(temporary, dpi=90, format="png")
    finally:
        plt.close(fig)
    return path


def cost_over_time(result: SimulationResult, path: Path, window: int) -> Path:
    """Rolling mean cost per order (bps) against the intent index, per symbol and policy."""
    fig, axes = _grid(len(result.symbols))
    for ax, (symbol, sym) in zip(axes, result.symbols.items(), strict=False):
        for name in compared_policies(result, symbol):
            cost = costs(sym.runs[name].events)
            filled = np.where(np.isfinite(cost), cost, 0.0)
            counts = np.convolve(np.isfinite(cost).astype(float), np.ones(window), "valid")
            rolling = np.convolve(filled, np.ones(window), "valid") / np.maximum(counts, 1.0)
            ax.plot(np.arange(rolling.size) + window, rolling, label=name, lw=1.2)
        ax.set_title(f"{symbol}: cost per order ({window}-order mean)")
        ax.set_xlabel("order (arrival order)")
        ax.set_ylabel("cost bps")
        ax.legend(fontsize=7)
    return _save(fig, path)


def regret(result: SimulationResult, path: Path) -> Path:
    """Cumulative regret (bps) of each policy against the best fixed arm in hindsight."""
    fig, axes = _grid(len(result.symbols))
    for ax, (symbol, sym) in zip(axes, result.symbols.items(), strict=False):
        best = sym.runs[sym.best_fixed]
        for name in compared_policies(result, symbol):
            if name != sym.best_fixed:
                ax.plot(cumulative_regret_bps(sym.runs[name], best), label=name, lw=1.2)
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_title(f"{symbol}: regret vs {sym.best_fixed}")
        ax.set_xlabel("order")
        ax.set_ylabel("cumulative bps")
        ax.legend(fontsize=7)
    return _save(fig, path)


def _interval(ax: plt.Axes, value: float, low: float, high: float, y: float, colour: object, *,
              label: str | None, size: float = 5) -> None:
    """A point with its interval drawn as a line (a bootstrap interval need not contain the point)."""
    ax.hlines(y, low, high, color=colour, lw=1.2)
    ax.plot([value], [y], "o", color=colour, ms=size, label=label)


def mean_cost(result: SimulationResult, path: Path) -> Path:
    """Mean cost per order (bps) with its bootstrap interval, per symbol and compared policy."""
    fig, axes = _grid(len(result.symbols))
    for ax, (symbol, sym) in zip(axes, result.symbols.items(), strict=False):
        names = [n for n in compared_policies(result, symbol) if sym.summaries[n].mean_cost_bps is not None]
        for y, name in enumerate(names):
            s = sym.summaries[name]
            low = s.cost_ci_low_bps if s.cost_ci_low_bps is not None else s.mean_cost_bps
            high = s.cost_ci_high_bps if s.cost_ci_high_bps is not None else s.mean_cost_bps
            colour = "black" if name == sym.best_fixed else ("tab:blue" if name.startswith(LEARNER_PREFIX)
                                                              else "tab:grey")
            _interval(ax, s.mean_cost_bps, low, high, y, colour, label=None)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("mean cost bps (95% CI; lower is better)")
        ax.set_title(f"{symbol}")
        ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def arm_heatmap(result: SimulationResult, path: Path) -> Path | None:
    """Share of each learner's orders routed with each arm: one row per (symbol, learner), one column per
    arm; the best fixed arm in hindsight is boxed red, each learner's final greedy arm is starred.
    None when no learner ran."""
    if not result.options.learners:
        return None
    arms = list(result.arm_ids)
    rows = [(symbol, name) for symbol, sym in result.symbols.items() for name in sym.learners]
    shares = np.array([[result.symbols[s].learners[n].arm_shares[a] for a in arms] for s, n in rows])
    fig, ax = plt.subplots(figsize=(3.0 + 0.6 * len(arms), 1.5 + 0.28 * len(rows)))
    image = ax.imshow(shares, aspect="auto", cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(arms)), arms, rotation=60, fontsize=7)
    ax.set_yticks(range(len(rows)), [f"{s} {n}" for s, n in rows], fontsize=7)
    for r, (symbol, name) in enumerate(rows):
        for c in range(len(arms)):
            if shares[r, c] >= 0.005:
                ax.text(c, r, f"{100 * shares[r, c]:.0f}", ha="center", va="center", fontsize=6,
                        color="white" if shares[r, c] > 0.5 else "black")
        outcome = result.symbols[symbol].learners[name]
        ax.plot(arms.index(outcome.greedy_arm) + 0.32, r, marker="*", color="orange", ms=8,
                markeredgecolor="black", mew=0.4, ls="none")
    start = 0
    for sym in result.symbols.values():
        n = len(sym.learners)
        best = arms.index(sym.best_fixed.removeprefix(FIXED_PREFIX))
        ax.add_patch(plt.Rectangle((best - 0.5, start - 0.5), 1, n, fill=False, edgecolor="red", lw=1.8))
        if start:
            ax.axhline(start - 0.5, color="black", lw=0.8)
        start += n
    fig.colorbar(image, ax=ax, label="share of the learner's orders (numbers: %)")
    ax.set_title("learners' arm choices (red box: best fixed arm in hindsight; star: final greedy arm)", fontsize=9)
    return _save(fig, path)


def fixed_arm_costs(result: SimulationResult, path: Path) -> Path:
    """Mean cost of every fixed arm per symbol (rows symbols, columns arms, coloured by excess over the
    row's best); the best arm is boxed."""
    symbols = list(result.symbols)
    arms = list(result.arm_ids)
    grid = np.full((len(symbols), len(arms)), np.nan)
    for r, symbol in enumerate(symbols):
        for c, arm in enumerate(arms):
            value = result.symbols[symbol].summaries[f"{FIXED_PREFIX}{arm}"].mean_cost_bps
            grid[r, c] = np.nan if value is None else value
    fig, ax = plt.subplots(figsize=(2.5 + 0.7 * len(arms), 1.8 + 0.5 * len(symbols)))
    excess = grid - np.nanmin(grid, axis=1, keepdims=True)  # per symbol: spot and perp fees differ by 5 bps
    image = ax.imshow(excess, aspect="auto", cmap="viridis_r")
    ax.set_xticks(range(len(arms)), arms, rotation=60, fontsize=7)
    ax.set_yticks(range(len(symbols)), symbols, fontsize=8)
    for r, symbol in enumerate(symbols):
        c = arms.index(result.symbols[symbol].best_fixed.removeprefix(FIXED_PREFIX))
        ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="red", lw=2))
        for cc in range(len(arms)):
            ax.text(cc, r, f"{grid[r, cc]:.1f}", ha="center", va="center", fontsize=6,
                    color="white" if excess[r, cc] > 0.6 * np.nanmax(excess) else "black")
    fig.colorbar(image, ax=ax, label="bps above the symbol's best arm")
    ax.set_title("fixed-arm mean cost bps (colour: excess over the row's best; red: best in hindsight)", fontsize=9)
    return _save(fig, path)


def maker_fallback(result: SimulationResult, path: Path) -> Path:
    """Maker ratio and fallback ratio per symbol and policy, side by side."""
    fig, axes = _grid(len(result.symbols))
    for ax, (symbol, sym) in zip(axes, result.symbols.items(), strict=False):
        names = compared_policies(result, symbol)
        x = np.arange(len(names))
        maker = [sym.summaries[n].maker_ratio or 0.0 for n in names]
        fallback = [sym.summaries[n].fallback_ratio for n in names]
        ax.bar(x - 0.2, maker, 0.4, label="maker ratio")
        ax.bar(x + 0.2, fallback, 0.4, label="fallback ratio")
        ax.set_xticks(x, names, rotation=30, fontsize=7, ha="right")
        ax.set_ylim(0, 1)
        ax.set_title(symbol)
        ax.legend(fontsize=7)
    return _save(fig, path)


def slippage(result: SimulationResult, path: Path) -> Path:
    """Distribution of slippage (bps vs arrival mid, before fees) per symbol and policy (box plots)."""
    fig, axes = _grid(len(result.symbols))
    for ax, (symbol, sym) in zip(axes, result.symbols.items(), strict=False):
        names = compared_policies(result, symbol)
        data = [[e.slippage_bps for e in sym.runs[n].events if e.slippage_bps is not None] or [np.nan]
                for n in names]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=30, fontsize=7, ha="right")
        ax.set_title(f"{symbol}: slippage bps")
    return _save(fig, path)


def ope(result: SimulationResult, path: Path) -> Path | None:
    """Per symbol: each estimator's cost estimate (with interval) of each learner's greedy arm, beside the
    arm's on-policy value from its own fixed run (black bar: the truth's interval, black line: its mean).
    None when no learner ran."""
    with_ope = {symbol: sym for symbol, sym in result.symbols.items() if sym.ope}
    if not with_ope:
        return None
    fig, axes = _grid(len(with_ope), height=0.9 + 0.85 * max(len(s.ope) for s in with_ope.values()))
    names = list(next(iter(with_ope.values())).ope[0].report.estimates)
    colours = plt.get_cmap("tab10")
    for ax, (symbol, sym) in zip(axes, with_ope.items(), strict=False):
        labels = []
        for g, comp in enumerate(sym.ope):
            ax.fill_betweenx([g - 0.42, g + 0.42], comp.truth_ci_low_bps, comp.truth_ci_high_bps, color="black",
                             alpha=0.12, lw=0)
            ax.plot([comp.truth_cost_bps] * 2, [g - 0.42, g + 0.42], color="black", lw=1.6)
            for k, (name, est) in enumerate(comp.estimates_bps().items()):
                y = g - 0.35 + 0.7 * k / max(1, len(names) - 1)
                _interval(ax, est["cost_bps"], est["ci_low_bps"], est["ci_high_bps"], y, colours(k % 10),
                          label=name if g == 0 else None, size=3)
            learner = comp.learner.removeprefix(LEARNER_PREFIX)
            share = sym.learners[learner].arm_shares[comp.arm]
            labels.append(f"{learner}\n{comp.arm}\n({share:.0%} of its log)")
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("cost bps of always playing the greedy arm")
        ax.set_title(f"{symbol}: OPE (dots) vs fixed-run truth (black)", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    handles, legend_labels = next(iter(axes)).get_legend_handles_labels()
    fig.legend(handles, legend_labels, loc="lower center", ncol=min(8, len(names)), fontsize=7)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def shadow_agreement(result: SimulationResult, path: Path) -> Path | None:
    """Per shadow scenario: rolling agreement of the learner's proposals with the champion's arm (over the
    gate's window) and overall, the gate checks (green passed, red failed), the threshold and the switch to
    live. None when no scenario ran."""
    scenarios = [sym.shadow.scenario for sym in result.symbols.values() if sym.shadow is not None]
    if not scenarios:
        return None
    fig, axes = _grid(len(scenarios), width=6.0)
    for ax, s in zip(axes, scenarios, strict=False):
        x = np.arange(1, len(s.decisions) + 1)
        agrees = np.array([d.agrees for d in s.decisions], dtype=float)
        ax.plot(x, rolling_agreement(s.decisions, s.agreement_window), lw=1.4,
                label=f"agreement, last {s.agreement_window} proposals")
        ax.plot(x, np.cumsum(agrees) / x, lw=1.0, ls="--", label="agreement since start")
        ax.axhline(s.min_agreement, color="grey", ls=":", lw=1.0, label=f"gate threshold {s.min_agreement:g}")
        for check in s.gate_checks:
            value = check.evaluation.agreement if check.evaluation.agreement is not None else 0.0
            colour = "tab:green" if check.evaluation.passes else "tab:red"
            ax.plot([check.after_orders], [value], "o", ms=6, color=colour)
        ax.plot([], [], "o", color="tab:red", label="gate check (red failed, green passed)")
        total = len(s.run.events)
        if s.went_live_by is not None:
            ax.axvline(s.shadow_orders, color="black", lw=1.2)
            ax.axvspan(s.shadow_orders, total, color="tab:blue", alpha=0.08, label="learner acts live")
            ax.text(s.shadow_orders, 1.02, f" go-live by {s.went_live_by}", fontsize=7, va="bottom")
        ax.set_xlim(0, total)
        ax.set_ylim(0, 1.1)
        ax.set_xlabel("order (arrival order)")
        ax.set_ylabel("share of proposals = champion's arm")
        ax.set_title(f"{s.symbol}: shadow {s.learner} vs exploring champion", fontsize=9)
        ax.legend(fontsize=7, loc="center right")
    return _save(fig, path)


def shadow_costs(result: SimulationResult, path: Path) -> Path | None:
    """Per shadow scenario: the gate's OPE cost of the learner's best arm at go-live (with CI), the champion's
    on-policy value in the same window, then the measured cost of the learner live and of the champion and
    the static policy on exactly the live phase's orders. None when no scenario ran."""
    outcomes = [sym.shadow for sym in result.symbols.values() if sym.shadow is not None]
    if not outcomes:
        return None
    fig, axes = _grid(len(outcomes), width=6.4, height=3.2)
    for ax, outcome in zip(axes, outcomes, strict=False):
        s, block = outcome.scenario, outcome.to_dict()
        rows: list[tuple[str, dict[str, float] | None, str]] = []
        at = block["at_go_live"]
        if at is not None:
            rows.append((f"OPE at go-live\n({s.gate_estimator}, {at['candidate_arm']})",
                         _as_interval(at["estimate"], "cost_bps"), "tab:orange"))
            rows.append(("champion in OPE window\n(on-policy)", _as_interval(at["acting"], "cost_bps"), "tab:grey"))
        labels = {LIVE_PHASE: ("learner live", "tab:blue"), CHAMPION_SAME_ORDERS: ("champion, same orders", "black"),
                  STATIC_SAME_ORDERS: ("static, same orders", "tab:grey"),
                  CHAMPION_ALL_ORDERS: ("champion, all orders", "silver")}
        for name, (label, colour) in labels.items():
            rows.append((label, _as_interval(block["costs"].get(name), "mean_cost_bps"), colour))
        drawn = [(label, iv, colour) for label, iv, colour in rows if iv is not None]
        for y, (_, iv, colour) in enumerate(drawn):
            _interval(ax, iv["value"], iv["low"], iv["high"], y, colour, label=None, size=6)
        ax.set_yticks(range(len(drawn)), [label for label, _, _ in drawn], fontsize=7)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlabel("cost bps (95% CI; lower is better)")
        live = f"live after {s.shadow_orders} orders by {s.went_live_by}" if s.went_live_by else "never went live"
        ax.set_title(f"{s.symbol}: shadow {s.learner}, {live}", fontsize=9)
    return _save(fig, path)


def _as_interval(row: dict[str, Any] | None, key: str) -> dict[str, float] | None:
    """``{"value", "low", "high"}`` of a cost row of the shadow block (None when it has no value)."""
    if row is None or row.get(key) is None:
        return None
    value = float(row[key])
    low, high = row.get("ci_low_bps"), row.get("ci_high_bps")
    return {"value": value, "low": value if low is None else float(low), "high": value if high is None else float(high)}
