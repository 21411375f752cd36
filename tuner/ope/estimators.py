"""Off-policy evaluation: what a candidate policy would have earned on logged decisions, with its doubt.

Estimators (the Open Bandit Pipeline's set, reimplemented because it does not install on 3.11):
inverse propensity scoring (optionally clipped), self-normalised IPS, the direct method, doubly robust,
self-normalised DR, switch-DR and DR with optimistic shrinkage; the replay method lives in
:mod:`tuner.ope.replay`. Each returns an :class:`OpeEstimate` with a bootstrap interval
(:mod:`tuner.ope.bootstrap`), the weight diagnostics that tell whether to trust it, the support gap and
the logging policy's own value as the baseline.

Support: with only the logged action's propensity per event, we cannot know whether the logging policy
could have taken the candidate's action at that event. If the log carries the logging policy's full
distribution (``LoggedBandit.logging_pi``) the gap is judged per event (candidate mass on actions with
logging probability 0). Otherwise it is judged per log: candidate mass on arms never logged at all.
The per-log check misses arms the logging policy takes only in some contexts, so supply
``logging_pi`` whenever the logging policy can be replayed.

Intervals resample the per-event terms with the reward model held fixed (fitted once on the whole log),
as the Open Bandit Pipeline does: they leave out the model's own fitting noise, which is small next to
the importance-weighted residuals for the per-arm models used here.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import numpy as np

from router_tuner.tuner.ope.bootstrap import BlockBootstrap, BootstrapConfig, Component, point_value
from router_tuner.tuner.ope.log import LoggedBandit
from router_tuner.tuner.ope.policy import check_policy
from router_tuner.tuner.ope.reward_model import RewardModel, RewardPrediction

MIN_WEIGHTED_EVENTS_FOR_INTERVAL = 2
"""Logged events carrying weight an estimate needs for its bootstrap interval to mean anything: resampling one event
gives it zero width, [x, x], as if the cost were known exactly."""


@dataclass(frozen=True, slots=True)
class OpeEstimate:
    """One estimator's value of the candidate, its interval and the diagnostics to judge it by.

    ``ess`` is the effective sample size of the importance weights, (sum w)^2 / sum w^2: how many
    on-policy events the log is worth for this candidate. ``weight_threshold`` and
    ``share_above_threshold`` are set for estimators that cut weights (clipped IPS: clip level and
    share clipped; switch-DR: tau and share switched to the model). ``support_gap_share`` is the share
    of events where the candidate puts mass on an action the logging policy could not take there
    (``support_basis`` says how that was judged) and ``support_gap_mass`` the mean such mass.
    For the replay method, which uses no weights, ``n_nonzero_weight`` and ``ess`` are the number of
    events kept and the weight and support fields are ``None``.
    """

    estimator: str
    value: float
    ci_low: float
    ci_high: float
    ci_level: float
    n: int
    n_nonzero_weight: int
    ess: float
    weight_max: float | None
    weight_mean: float | None
    weight_quantiles: tuple[tuple[float, float], ...] | None
    weight_threshold: float | None
    share_above_threshold: float | None
    support_basis: Literal["logging_pi", "arms_logged"] | None
    support_gap_share: float | None
    support_gap_mass: float | None
    logging_value: float
    reward_model: str | None
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (quantiles as a ``{"q0.5": value}`` mapping)."""
        out = asdict(self)
        if self.weight_quantiles is not None:
            out["weight_quantiles"] = {f"q{q:g}": v for q, v in self.weight_quantiles}
        out["notes"] = list(self.notes)
        return out


@dataclass(frozen=True, slots=True)
class OpeInputs:
    """Per-event quantities every estimator is a function of."""

    weights: np.ndarray
    rewards: np.ndarray
    q_hat_logged: np.ndarray | None
    q_hat_pi: np.ndarray | None
    dm_components: list[Component] | None = None


@dataclass(frozen=True, slots=True)
class Terms:
    """An estimator's components (see :mod:`tuner.ope.bootstrap`) and its weight-cut report."""

    components: list[Component]
    weight_threshold: float | None = None
    share_above_threshold: float | None = None


class Estimator(Protocol):
    """An off-policy estimator: a name, whether it needs a reward model, and its per-event terms."""

    @property
    def name(self) -> str: ...

    @property
    def needs_reward_model(self) -> bool: ...

    def terms(self, inputs: OpeInputs) -> Terms: ...


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class IPS:
    """Inverse propensity scoring: mean of w*r. Unbiased under full support; ``clip_threshold`` caps
    the weights (bias towards zero reward, less variance) and the share clipped is reported."""

    clip_threshold: float | None = None
    needs_reward_model = False

    def __post_init__(self) -> None:
        if self.clip_threshold is not None:
            _positive("clip_threshold", self.clip_threshold)

    @property
    def name(self) -> str:
        return "ips" if self.clip_threshold is None else f"ips_clip{self.clip_threshold:g}"

    def terms(self, inputs: OpeInputs) -> Terms:
        if self.clip_threshold is None:
            return Terms([(inputs.weights * inputs.rewards, None)])
        clipped = np.minimum(inputs.weights, self.clip_threshold)
        share = float(np.mean(inputs.weights > self.clip_threshold))
        return Terms([(clipped * inputs.rewards, None)], self.clip_threshold, share)


@dataclass(frozen=True, slots=True)
class SNIPS:
    """Self-normalised IPS: sum(w*r)/sum(w). Slightly biased, bounded by the rewards, lower variance."""

    needs_reward_model = False

    @property
    def name(self) -> str:
        return "snips"

    def terms(self, inputs: OpeInputs) -> Terms:
        return Terms([(inputs.weights * inputs.rewards, inputs.weights)])


@dataclass(frozen=True, slots=True)
class DirectMethod:
    """Mean over events of the reward model under the candidate: low variance, as biased as the model."""

    needs_reward_model = True

    @property
    def name(self) -> str:
        return "dm"

    def terms(self, inputs: OpeInputs) -> Terms:
        if inputs.dm_components is not None:
            return Terms(list(inputs.dm_components))
        return Terms([(_model(inputs)[1], None)])


@dataclass(frozen=True, slots=True)
class DoublyRobust:
    """DM plus the IPS-weighted model residual: unbiased if either propensities or model are right."""

    needs_reward_model = True

    @property
    def name(self) -> str:
        return "dr"

    def terms(self, inputs: OpeInputs) -> Terms:
        q_logged, q_pi = _model(inputs)
        return Terms([(q_pi + inputs.weights * (inputs.rewards - q_logged), None)])


@dataclass(frozen=True, slots=True)
class SelfNormalizedDR:
    """DR with the residual term normalised by sum(w) instead of n."""

    needs_reward_model = True

    @property
    def name(self) -> str:
        return "sndr"

    def terms(self, inputs: OpeInputs) -> Terms:
        q_logged, q_pi = _model(inputs)
        return Terms([(q_pi, None), (inputs.weights * (inputs.rewards - q_logged), inputs.weights)])


@dataclass(frozen=True, slots=True)
class SwitchDR:
    """DR that drops the residual correction where the weight exceeds ``tau`` (the model alone there)."""

    tau: float
    needs_reward_model = True

    def __post_init__(self) -> None:
        _positive("tau", self.tau)

    @property
    def name(self) -> str:
        return f"switch_dr{self.tau:g}"

    def terms(self, inputs: OpeInputs) -> Terms:
        q_logged, q_pi = _model(inputs)
        kept = inputs.weights <= self.tau
        correction = np.where(kept, inputs.weights * (inputs.rewards - q_logged), 0.0)
        return Terms([(q_pi + correction, None)], self.tau, float(np.mean(~kept)))


@dataclass(frozen=True, slots=True)
class DRShrinkage:
    """DR with optimistically shrunk weights lambda*w/(w^2 + lambda) (Su et al. 2020):
    ``shrinkage_lambda`` to infinity is DR, to zero is DM."""

    shrinkage_lambda: float
    needs_reward_model = True

    def __post_init__(self) -> None:
        _positive("shrinkage_lambda", self.shrinkage_lambda)

    @property
    def name(self) -> str:
        return f"dr_os{self.shrinkage_lambda:g}"

    def terms(self, inputs: OpeInputs) -> Terms:
        q_logged, q_pi = _model(inputs)
        w = inputs.weights
        shrunk = self.shrinkage_lambda * w / (w * w + self.shrinkage_lambda)
        return Terms([(q_pi + shrunk * (inputs.rewards - q_logged), None)])


def _model(inputs: OpeInputs) -> tuple[np.ndarray, np.ndarray]:
    if inputs.q_hat_logged is None or inputs.q_hat_pi is None:
        raise ValueError("this estimator needs a reward model")
    return inputs.q_hat_logged, inputs.q_hat_pi


def evaluate(
    log: LoggedBandit,
    pi: np.ndarray,
    estimators: Sequence[Estimator],
    *,
    bootstrap: BootstrapConfig,
    reward_model: RewardModel | None,
    weight_quantiles: Sequence[float],
) -> dict[str, OpeEstimate]:
    """Every estimator's value of candidate ``pi`` (n, K) on ``log``, with paired bootstrap intervals.

    ``reward_model`` is required when an estimator needs one (DM and the DR family).
    ``weight_quantiles`` (each in [0, 1]) are the importance-weight quantiles to report.

    Examples
    --------
    >>> from router_tuner.tuner.ope.policy import fixed_arm_policy
    >>> log = LoggedBandit(actions=np.array([0, 1, 0, 1]), propensities=np.full(4, 0.5),
    ...                    rewards=np.array([-2.0, -5.0, -1.0, -4.0]), arm_ids=("maker", "taker"))
    >>> boot = BootstrapConfig(n_resamples=200, ci_level=0.9, seed=0, max_blocks=1000)
    >>> out = evaluate(log, fixed_arm_policy(log, "maker"), [IPS(), SNIPS()], bootstrap=boot,
    ...                reward_model=None, weight_quantiles=(0.5,))
    >>> out["ips"].value, out["snips"].value, out["ips"].ess, out["ips"].logging_value
    (-1.5, -1.5, 2.0, -3.0)
    """
    return evaluate_with_components(log, pi, estimators, bootstrap=bootstrap, reward_model=reward_model,
                                    weight_quantiles=weight_quantiles)[0]


def evaluate_with_components(
    log: LoggedBandit,
    pi: np.ndarray,
    estimators: Sequence[Estimator],
    *,
    bootstrap: BootstrapConfig,
    reward_model: RewardModel | None,
    weight_quantiles: Sequence[float],
    resamples: BlockBootstrap | None = None,
) -> tuple[dict[str, OpeEstimate], dict[str, list[Component]]]:
    """:func:`evaluate` and each estimator's per-event components, for intervals of differences
    (:func:`paired_interval`) drawn on the very resamples the estimates' intervals were (pass
    ``resamples`` to share them with other evaluations of the same log)."""
    if not estimators:
        raise ValueError("no estimators to run")
    names = [e.name for e in estimators]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate estimator names: {names}")
    if any(not 0.0 <= q <= 1.0 for q in weight_quantiles):
        raise ValueError(f"weight_quantiles must be in [0, 1], got {list(weight_quantiles)}")
    pi = check_policy(pi, log)
    rows = np.arange(log.n)
    weights = pi[rows, log.actions] / log.propensities
    prediction: RewardPrediction | None = None
    q_logged = q_pi = None
    if any(e.needs_reward_model for e in estimators):
        if reward_model is None:
            raise ValueError(
                f"estimators {[e.name for e in estimators if e.needs_reward_model]} need a reward_model"
            )
        prediction = reward_model.fit_predict(log, pi)
        q_logged, q_pi = prediction.at_logged, prediction.under_policy
    inputs = OpeInputs(weights=weights, rewards=log.rewards, q_hat_logged=q_logged, q_hat_pi=q_pi,
                       dm_components=prediction.dm_components if prediction is not None else None)
    resampler = BlockBootstrap.shared(log.n, bootstrap, resamples)
    common = _common_fields(log, pi, weights, weight_quantiles, bootstrap)
    support_note = _support_note(common)
    results: dict[str, OpeEstimate] = {}
    components: dict[str, list[Component]] = {}
    for estimator in estimators:
        terms = estimator.terms(inputs)
        components[estimator.name] = terms.components
        low, high = resampler.interval(terms.components)
        notes = list(support_note)
        model_name = None
        if estimator.needs_reward_model and prediction is not None and reward_model is not None:
            model_name = reward_model.name
            if not isinstance(estimator, DirectMethod) or prediction.dm_components is None:
                notes.append(f"{estimator.name} interval holds the {reward_model.name} reward model fixed: "
                             "it leaves out the model's own estimation error (too narrow when few logged "
                             "events carry weight, e.g. a deterministic logging policy)")
            if prediction.arms_without_data:
                notes.append(
                    f"reward model has no data for arms {list(prediction.arms_without_data)}: "
                    "predicted by the pooled fit"
                )
        results[estimator.name] = OpeEstimate(
            estimator=estimator.name,
            value=point_value(terms.components),
            ci_low=low,
            ci_high=high,
            weight_threshold=terms.weight_threshold,
            share_above_threshold=terms.share_above_threshold,
            reward_model=model_name,
            notes=tuple(notes),
            **common,
        )
    return results, components


def on_policy_components(log: LoggedBandit) -> list[Component]:
    """The on-policy value's components: the plain mean of the logged rewards."""
    return [(log.rewards, None)]


def paired_interval(minuend: Sequence[Component], subtrahend: Sequence[Component],
                    bootstrap: BlockBootstrap) -> tuple[float, float, float]:
    """``minuend - subtrahend`` (two estimators' values on one log) and its percentile interval.

    Paired: both are recomputed on each of the same resamples and differenced there, so what they share
    (the same events, the same lucky or unlucky blocks) cancels. The difference of two separate
    intervals would ignore that and be far too wide (or, for anti-correlated estimates, too narrow).
    """
    combined = [*minuend, *((-num, den) for num, den in subtrahend)]
    low, high = bootstrap.interval(combined)
    return point_value(combined), low, high


def on_policy_value(log: LoggedBandit, *, bootstrap: BootstrapConfig,
                    resamples: BlockBootstrap | None = None) -> OpeEstimate:
    """The logging policy's own mean reward on the log: the baseline a candidate must beat."""
    rewards = log.rewards
    low, high = BlockBootstrap.shared(log.n, bootstrap, resamples).interval(on_policy_components(log))
    value = float(rewards.mean())
    return OpeEstimate(
        estimator="on_policy",
        value=value,
        ci_low=low,
        ci_high=high,
        ci_level=bootstrap.ci_level,
        n=log.n,
        n_nonzero_weight=log.n,
        ess=float(log.n),
        weight_max=1.0,
        weight_mean=1.0,
        weight_quantiles=None,
        weight_threshold=None,
        share_above_threshold=None,
        support_basis=None,
        support_gap_share=0.0,
        support_gap_mass=0.0,
        logging_value=value,
        reward_model=None,
        notes=(),
    )


def evaluate_by_group(
    log: LoggedBandit,
    pi: np.ndarray,
    estimators: Sequence[Estimator],
    *,
    key: Literal["symbol", "time_slice"],
    bootstrap: BootstrapConfig,
    reward_model: RewardModel | None,
    weight_quantiles: Sequence[float],
) -> dict[Hashable, dict[str, OpeEstimate]]:
    """:func:`evaluate` per symbol or per time slice; each group fits its own reward model."""
    keys = log.symbols if key == "symbol" else log.time_slices
    if keys is None:
        raise ValueError(f"the log has no {key} keys to group by")
    pi = check_policy(pi, log)
    out: dict[Hashable, dict[str, OpeEstimate]] = {}
    for group in np.unique(keys):
        mask = keys == group
        label = group.item() if isinstance(group, np.generic) else group
        out[label] = evaluate(
            log.subset(mask),
            pi[mask],
            estimators,
            bootstrap=bootstrap,
            reward_model=reward_model,
            weight_quantiles=weight_quantiles,
        )
    return out


def effective_sample_size(weights: np.ndarray) -> float:
    """(sum w)^2 / sum w^2; 0 when every weight is 0."""
    total_sq = float(np.dot(weights, weights))
    return 0.0 if total_sq == 0.0 else float(weights.sum()) ** 2 / total_sq


def support_gap(log: LoggedBandit, pi: np.ndarray) -> tuple[Literal["logging_pi", "arms_logged"], np.ndarray]:
    """Per event, the candidate's probability mass on actions outside the logging policy's support."""
    if log.logging_pi is not None:
        unsupported = log.logging_pi == 0.0
        gap = np.zeros(log.n)
        rows = np.flatnonzero(unsupported.any(axis=1))  # usually few: skip the full (n, K) product
        gap[rows] = np.einsum("nk,nk->n", pi[rows], unsupported[rows])
        return "logging_pi", gap
    never_logged = np.bincount(log.actions, minlength=log.n_arms) == 0
    return "arms_logged", pi[:, never_logged].sum(axis=1)


def _common_fields(
    log: LoggedBandit,
    pi: np.ndarray,
    weights: np.ndarray,
    weight_quantiles: Sequence[float],
    bootstrap: BootstrapConfig,
) -> dict[str, Any]:
    basis, gap = support_gap(log, pi)
    quantiles = np.quantile(weights, list(weight_quantiles)) if weight_quantiles else np.empty(0)
    return {
        "ci_level": bootstrap.ci_level,
        "n": log.n,
        "n_nonzero_weight": int(np.count_nonzero(weights)),
        "ess": effective_sample_size(weights),
        "weight_max": float(weights.max()),
        "weight_mean": float(weights.mean()),
        "weight_quantiles": tuple(zip(map(float, weight_quantiles), quantiles.tolist(), strict=True)),
        "support_basis": basis,
        "support_gap_share": float(np.mean(gap > 0.0)),
        "support_gap_mass": float(gap.mean()),
        "logging_value": float(log.rewards.mean()),
    }


def _support_note(common: dict[str, Any]) -> list[str]:
    if common["support_gap_share"] == 0.0:
        return []
    where = (
        "the logging policy could not take there"
        if common["support_basis"] == "logging_pi"
        else "never logged"
    )
    return [
        f"support gap: on {common['support_gap_share']:.1%} of events the candidate puts mass "
        f"({common['support_gap_mass']:.1%} on average) on arms {where}; IPS counts them as reward 0, SNIPS "
        "renormalises them away and DM/DR rely on the reward model there"
    ]
