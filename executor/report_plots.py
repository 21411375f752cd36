"""The report's PNG plots (matplotlib, Agg backend: no display needed), one function per figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from executor.simulation import SimulationResult
from executor.simulation_policies import FIXED_PREFIX
from executor.simulation_results import costs, cumulative_regret_bps


def compared_policies(result: SimulationResult, symbol: str) -> list[str]:
    """The policies each plot shows: baselines, the best fixed arm, then learners (fixed arms omitted)."""
    sym = result.symbols[symbol]
    names = [n for n in sym.runs if not n.startswith(FIXED_PREFIX)]
    return [*names[:3], sym.best_fixed, *names[3:]]


def _grid(n: int) -> tuple[plt.Figure, np.ndarray]:
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
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


def arm_heatmap(result: SimulationResult, path: Path) -> Path:
    """Mean cost of every fixed arm per symbol (rows symbols, columns arms, coloured by excess over the
    row's best); the best arm is boxed."""
    symbols = list(result.symbols)
    arms = list(result.arm_ids)
    grid = np.full((len(symbols), len(arms)), np.nan)
    for r, symbol in enumerate(symbols):
        for c, arm in enumerate(arms):
            value = result.symbols[symbol].summaries[f"{FIXED_PREFIX}{arm}"].mean_cost_bps
            grid[r, c] = np.nan if value is None else value
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(arms), 1.2 + 0.5 * len(symbols)))
    excess = grid - np.nanmin(grid, axis=1, keepdims=True)  # per symbol: spot and perp fees differ by 5 bps
    image = ax.imshow(excess, aspect="auto", cmap="viridis_r")
    ax.set_xticks(range(len(arms)), arms, rotation=60, fontsize=7)
    ax.set_yticks(range(len(symbols)), symbols, fontsize=8)
    for r, symbol in enumerate(symbols):
        c = arms.index(result.symbols[symbol].best_fixed.removeprefix(FIXED_PREFIX))
        ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="red", lw=2))
        for cc in range(len(arms)):
            ax.text(cc, r, f"{grid[r, cc]:.1f}", ha="center", va="center", fontsize=6, color="black")
    fig.colorbar(image, ax=ax, label="bps above the symbol's best arm")
    ax.set_title("fixed arm mean cost bps (colour: excess over the row's best; red: best in hindsight)")
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
    """OPE estimates (with intervals) of each learner's final arm beside its fixed-arm truth; None if no OPE."""
    rows = [c for sym in result.symbols.values() for c in sym.ope]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.45 * len(rows) * 5))
    y = 0
    labels = []
    for comp in rows:
        ax.errorbar(comp.truth_cost_bps, y, xerr=[[comp.truth_cost_bps - comp.truth_ci_low_bps],
                    [comp.truth_ci_high_bps - comp.truth_cost_bps]], fmt="s", color="black")
        labels.append(f"{comp.symbol} {comp.learner} {comp.arm}: on-policy (truth)")
        y += 1
        for name, est in comp.estimates.items():
            ax.errorbar(est["cost_bps"], y, xerr=[[est["cost_bps"] - est["ci_low_bps"]],
                        [est["ci_high_bps"] - est["cost_bps"]]], fmt="o")
            labels.append(f"  {name}")
            y += 1
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("cost bps")
    ax.set_title("OPE of each learner's final arm vs that arm's on-policy value")
    return _save(fig, path)
