"""Where the tuner's policy versions go: a small publisher protocol, an MLflow one and an in-memory one.

The tuner hands a publisher one :class:`PolicyRecord` per new version: the policy, why it was published,
the learner and its hyper-parameters, the arm grid, the guardrails and the metrics of the period that
led to it. :class:`MlflowPublisher` records it as an MLflow run and registered model version (with the
risk and router configuration it runs under); :class:`InMemoryPublisher` keeps it in a list for
simulations and tests. MLflow is imported only when an :class:`MlflowPublisher` is built, never on the
decision path.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast, get_args

from router_tuner.config.loader import snapshot
from router_tuner.config.models import ConfigBundle
from router_tuner.router.policy import RouterPolicy
from router_tuner.tuner.arms import ArmGrid
from router_tuner.tuner.gate_record import gate_problem, tuner_rollback_tags
from router_tuner.tuner.guardrails import Guardrails
from router_tuner.tuner.registry_aliases import CHAMPION

if TYPE_CHECKING:
    from router_tuner.tuner.registry import PolicyRegistry, PolicyVersion, VersionTaken

PublishReason = Literal["schedule", "significant_change", "rollback"]

logger = logging.getLogger(__name__)

CONFIG_PARAM_SECTIONS = ("risk_limits", "router", "executor")
"""Config sections logged as params of every version: what the policy's costs depend on."""


@dataclass(frozen=True, slots=True)
class VersionMetrics:
    """What the period under the previous version showed, and what the learner expects of the new one.

    ``learned_cost_bps`` is the mean learned cost (reward-filtered, against ``tuner.json`` ``reward_mid``: by
    default the route-end mid with the waiting drift) of the orders routed under the previous version, exploration
    included: not the journal's ``RouterEvent.cost_bps`` against the arrival mid, which the report averages, so it
    is named apart from it; ``maker_ratio`` and ``fallback_ratio`` are shares of all its routed
    orders (unfilled and rejected included) that ended maker-only or used the fallback leg.
    ``regret_bps`` is a plug-in estimate of what that period's choices gave up per learned order:
    the mean over those orders of (best arm's estimated reward - the chosen arm's estimated reward),
    with every estimate the learner's current posterior (or running) mean, the best taken over arms
    inside the bounds that have evidence; for a contextual learner the estimates are at the period's
    mean context. It inherits the estimates' error (optimistic early, when means are noisy).
    ``expected_cost_bps`` is the learner's estimate for the new version's arm.
    """

    outcomes: int
    events: int
    learned_cost_bps: float
    maker_ratio: float
    fallback_ratio: float
    regret_bps: float
    expected_cost_bps: float

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """One published version with everything needed to reproduce and judge it."""

    policy: RouterPolicy
    reason: PublishReason
    previous_version: int
    learner: str
    learner_params: Mapping[str, float]
    grid: ArmGrid
    guardrails: Guardrails
    metrics: VersionMetrics
    previous: RouterPolicy | None = None
    """The version it follows (``previous_version``; the static policy as version 0), when the publisher knows it: a
    version the registry holds in its place is adopted only on top of the same history (:class:`MlflowPublisher`)."""

    def params(self) -> dict[str, Any]:
        """Plain-data parameters: learner, hyper-parameters, arm grid, guardrails, version lineage."""
        return {
            "symbol": self.policy.symbol,
            "policy_id": self.policy.policy_id,
            "policy_version": self.policy.version,
            "previous_version": self.previous_version,
            "reason": self.reason,
            "arm": self.policy.arm,
            "learner": self.learner,
            "learner_params": dict(self.learner_params),
            "arm_grid": {
                "maker_offsets_bps": sorted({a.maker_offset_bps for a in self.grid}),
                "taker_biases": sorted({a.taker_bias for a in self.grid}),
                "arm_ids": list(self.grid.arm_ids),
            },
            "guardrails": dataclasses.asdict(self.guardrails),
        }


@dataclass(frozen=True, slots=True)
class Adopted:
    """What a publisher found registered under the record's version instead of it: the version a run killed after
    registering it (and before saving its state) published, which stands; the tuner takes it as its own version."""

    policy: RouterPolicy
    reason: PublishReason


class PolicyPublisher(Protocol):
    """Records a new policy version; raises when it could not (the tuner then keeps its old version).

    Returns ``None`` when the record's version is published, or :class:`Adopted` when the registry held that version
    already with other knobs, published by a killed run of the same tuner (only :class:`MlflowPublisher` does)."""

    def publish(self, record: PolicyRecord) -> Adopted | None: ...


class InMemoryPublisher:
    """Keeps every record in order, for simulations and tests; a rollback version becomes champion at once."""

    def __init__(self) -> None:
        self.records: list[PolicyRecord] = []
        self._champion: dict[str, RouterPolicy] = {}

    def publish(self, record: PolicyRecord) -> None:
        self.records.append(record)
        symbol = record.policy.symbol
        if symbol not in self._champion or record.reason == "rollback":
            self._champion[symbol] = record.policy

    def records_of(self, symbol: str) -> list[PolicyRecord]:
        """Every record published for ``symbol``, oldest first."""
        return [r for r in self.records if r.policy.symbol == symbol]

    def versions(self, symbol: str) -> list[RouterPolicy]:
        """Every policy published for ``symbol``, oldest first."""
        return [r.policy for r in self.records_of(symbol)]

    def champion(self, symbol: str) -> RouterPolicy:
        """The acting version as a registry would have it (first version, or the latest rollback)."""
        try:
            return self._champion[symbol]
        except KeyError:
            raise KeyError(f"{symbol}: nothing published") from None


class MlflowPublisher:
    """Publishes each version to the MLflow registry, with the configuration it runs under.

    Params: the record's :meth:`PolicyRecord.params` plus the risk, router and executor configuration
    (:data:`CONFIG_PARAM_SECTIONS`), flattened by the registry to one key per setting
    (``router.static_policy.maker_ttl_ms``, ``risk_limits.symbol_caps.max_nav_pct``); metrics:
    :class:`VersionMetrics`; tags: ``learner`` beside the registry's own (as the simulation's learner runs are
    tagged); artifacts: the policy document, the pyfunc model and the full config snapshot.
    A ``rollback`` version is promoted to ``champion`` at once: it returns to knobs that already proved
    themselves, and the router must stop running the degraded ones without waiting for a person or an OPE
    gate (its gate record says so: ``tuner_rollback``). Other versions become ``challenger``.
    """

    def __init__(self, registry: PolicyRegistry, bundle: ConfigBundle, *, parent_run_id: str | None = None,
                 run_params: Mapping[str, Any] | None = None) -> None:
        """``parent_run_id`` nests every version's run under that run (the simulation's learner and symbol);
        ``run_params`` are logged with every version: what the publishing command ran with besides the
        configuration (``live``'s router seed)."""
        self._registry = registry
        self._snapshot = snapshot(bundle)
        self._parent_run_id = parent_run_id
        self._run_params = dict(run_params or {})

    @classmethod
    def from_config(cls, bundle: ConfigBundle, tracking_uri: str | None = None) -> MlflowPublisher:
        """A publisher on the registry named by ``tuner.json`` (``tracking_uri`` overrides it and the environment)."""
        from router_tuner.tuner.registry import PolicyRegistry

        mlflow_config = bundle.tuner.mlflow
        registry = PolicyRegistry(mlflow_config.tracking_uri, experiment=mlflow_config.experiment,
                                  model_prefix=mlflow_config.registered_model_prefix, override_uri=tracking_uri)
        return cls(registry, bundle)

    @property
    def registry(self) -> PolicyRegistry:
        return self._registry

    def publish(self, record: PolicyRecord) -> Adopted | None:
        """Publish ``record``'s version; :class:`Adopted` when a killed run of this tuner registered that version with
        other knobs (see :meth:`_adopt`)."""
        from router_tuner.tuner.registry import VersionTaken

        policy = record.policy
        params = {**record.params(), **self._run_params, **{key: self._snapshot[key] for key in CONFIG_PARAM_SECTIONS}}
        try:
            published = self._registry.publish(
                policy, params=params, metrics=record.metrics.as_dict(),
                config_snapshot=self._snapshot, run_name=f"{policy.symbol}-v{policy.version}-{record.reason}",
                parent_run_id=self._parent_run_id, tags={"learner": record.learner})
        except VersionTaken as taken:
            return self._adopt(record, taken)
        self._finish_rollback(published, record.reason, record.previous_version)
        return None

    def _finish_rollback(self, published: PolicyVersion, reason: str, previous_version: int) -> None:
        """A ``rollback`` version acts at once: champion, with its ``tuner_rollback`` gate record."""
        if reason != "rollback":
            return
        if CHAMPION not in published.aliases:
            self._registry.promote(published.symbol, published.version)
        elif gate_problem(published.tags) is None:
            return
        # promoted now, or by a process killed before its gate record (published again: the record is added, else
        # the champion stayed one no router acts on)
        self._registry.tag_version(published.symbol, published.version, tuner_rollback_tags(previous_version))

    def _history_problem(self, record: PolicyRecord) -> str | None:
        """Why the registry's version ``previous_version`` is not the one ``record`` follows (``None`` when it is, or
        when there is nothing to compare: version 0, or a record without its previous version)."""
        from router_tuner.tuner.registry import NoSuchVersion

        if record.previous is None or record.previous_version == 0:
            return None
        try:
            held = self._registry.show(record.policy.symbol, str(record.previous_version)).policy
        except NoSuchVersion:
            return f"the registry holds no version {record.previous_version} before it"
        ours = record.previous.as_params()
        if {k: v for k, v in held.items() if k != "propensity"} != {k: v for k, v in ours.items() if k != "propensity"}:
            return (f"the registry's version {record.previous_version} (arm {held.get('arm')}) is not the tuner's "
                    f"(arm {record.previous.arm})")
        return None

    def _adopt(self, record: PolicyRecord, taken: VersionTaken) -> Adopted:
        """Adopt the registry's newest version N, registered with other knobs than ``record``'s version N, when a run
        of this tuner that was killed after registering it and before saving its state explains it: same policy id,
        learner and previous version (the registry's holding the tuner's knobs), the same knobs but the arm's. It is
        finished as its own publish would have (aliases, gate record; a rollback promoted) and logged in one warning
        line; anything else is refused as the registry refused it, with why. A restart re-derives version N from the
        journal, and an outcome recovered after the kill (or a learner's random draw) may lead it elsewhere: version N
        was published all the same, and may act (a person may have reviewed it)."""
        from router_tuner.tuner.registry import RegistryError

        registered, policy = taken.registered, record.policy
        params, tags = self._registry.version_run(registered)
        reason = params.get("reason")
        differing = sorted(k for k, v in policy.as_params().items()
                           if registered.policy.get(k) != v and k not in ("arm", "propensity"))
        problem = None
        if registered.policy.get("policy_id") != policy.policy_id:
            problem = f"its policy id is {registered.policy.get('policy_id')!r}, the tuner's {policy.policy_id!r}"
        elif tags.get("learner") != record.learner:
            problem = f"its learner is {tags.get('learner')!r}, the tuner's {record.learner!r}"
        elif params.get("previous_version") != str(record.previous_version):
            problem = (f"it follows version {params.get('previous_version')}, the tuner's follows version "
                       f"{record.previous_version}")
        elif reason not in get_args(PublishReason):
            problem = f"its run records no publish reason ({reason!r})"
        elif set(differing) - {"maker_offset_bps", "taker_bias"}:
            problem = f"it differs in {', '.join(k for k in differing if k not in ('maker_offset_bps', 'taker_bias'))}"
        else:
            problem = self._history_problem(record)
        if problem is not None:
            raise RegistryError(f"{taken}; not adopted as a version a killed run of this tuner registered: "
                                f"{problem}") from taken
        adopted = RouterPolicy(**{**registered.policy, "propensity": 1.0})
        finished = self._registry.finish_version(policy.symbol, registered.version)
        self._finish_rollback(finished, reason, record.previous_version)
        knobs = ", ".join(f"{k} {registered.policy[k]} registered, {getattr(policy, k)} derived" for k in differing)
        logger.warning("%s: adopted %s version %d, registered by a run killed before it saved its state (arm %s, %s), "
                       "in place of the version %d the restarted tuner derived (arm %s, %s): %s; the tuner goes on "
                       "from version %d, its next version is %d", policy.symbol, registered.model, registered.version,
                       adopted.arm, reason, policy.version, policy.arm, record.reason, knobs or "the same knobs",
                       registered.version, registered.version + 1)
        return Adopted(policy=adopted, reason=cast(PublishReason, reason))  # one of them, checked above
