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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from router_tuner.config.loader import snapshot
from router_tuner.config.models import ConfigBundle
from router_tuner.router.policy import RouterPolicy
from router_tuner.tuner.arms import ArmGrid
from router_tuner.tuner.gate_record import gate_problem, tuner_rollback_tags
from router_tuner.tuner.guardrails import Guardrails
from router_tuner.tuner.registry_aliases import CHAMPION

if TYPE_CHECKING:
    from router_tuner.tuner.registry import PolicyRegistry

PublishReason = Literal["schedule", "significant_change", "rollback"]

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


class PolicyPublisher(Protocol):
    """Records a new policy version; raises when it could not (the tuner then keeps its old version)."""

    def publish(self, record: PolicyRecord) -> None: ...


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

    def publish(self, record: PolicyRecord) -> None:
        policy = record.policy
        params = {**record.params(), **self._run_params, **{key: self._snapshot[key] for key in CONFIG_PARAM_SECTIONS}}
        published = self._registry.publish(
            policy, params=params, metrics=record.metrics.as_dict(),
            config_snapshot=self._snapshot, run_name=f"{policy.symbol}-v{policy.version}-{record.reason}",
            parent_run_id=self._parent_run_id, tags={"learner": record.learner})
        if record.reason != "rollback":
            return
        if CHAMPION not in published.aliases:
            self._registry.promote(policy.symbol, published.version)
        elif gate_problem(published.tags) is None:
            return
        # promoted now, or by a process killed before its gate record (published again: the record is added, else
        # the champion stayed one no router acts on)
        self._registry.tag_version(policy.symbol, published.version, tuner_rollback_tags(record.previous_version))
