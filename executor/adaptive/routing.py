"""Adaptive routing: the tuner chooses each symbol's arm per intent and learns every RouterEvent exactly once.

The executor loop (``--policy-source tuner``) asks :meth:`AdaptiveRouting.decide` for the policy of an
intent that passed risk, routes it, and hands the RouterEvent to :meth:`AdaptiveRouting.learn`, which
observes it in the tuner (in memory) and returns the records to journal beside it (the shadow proposal,
the arm-safety changes). The loop journals them with the RouterEvent and TradeRecord in one batch and
then calls :meth:`AdaptiveRouting.committed`.

Ordering, and why nothing is learned twice or lost:

1. ``decide`` builds the decision context (``features.context.decision_context``, from the arrival touch
   and the mids this object has seen) and asks the tuner (``decide`` when live; the champion acts and
   ``shadow`` proposes when in shadow mode). The loop writes the returned ``DecisionRecord`` to the
   executor store in the same transaction as the intent's Submission, before any order leaves.
2. After routing: ``learn`` observes (memory only), the loop journals the batch, ``committed`` counts the
   event as learned and writes a checkpoint when due (every ``checkpoint_every_n_events``, and at once
   after a published version or a symbol going live). The tuner itself never writes state here: the
   service runs without a state path, and :class:`~executor.adaptive.checkpoint.TunerCheckpoint` saves
   the state together with ``router_events_learned``, the number of journaled RouterEvents it includes.
3. The saved state is therefore never ahead of the journal, only behind it. On start, the executor
   replays the journal: :meth:`catch_up` observes every RouterEvent after position
   ``router_events_learned`` (with the context from its DecisionRecord) without journaling anything
   again (its shadow and safety records are in the journal already). An intent that was in flight at
   the crash was never observed nor journaled; recovery journals its settled RouterEvent through the
   normal ``learn``/``committed`` path, with the proposal kept in its DecisionRecord.

A RouterEvent without a DecisionRecord (routed under another policy source) is counted in the journal
position but not learned; a fresh state (none saved yet, or not found at the path given) learns the journal
from its start, so every event a tuner decided is learned again: a state file lost or looked for elsewhere loses
nothing (it used to start at the journal's end, silently forgetting all it had learned). If the journal append
after ``learn`` fails, this object refuses to decide or checkpoint again (its memory is ahead of the
journal): the process must restart and catch up from the last checkpoint.

What is not exactly replayed: shadow agreement and the learners' random draws of decisions made after
the last checkpoint (the proposals are in the journal, the agreement window misses them); the mid at each route's
end (``reward_mid`` ``route_end``: read when the route ends, not journaled, so an event learned again is learned at
its journaled cost, which has the same mean); a version published between the last checkpoint and a crash is
published again on catch-up (at-least-once), or adopted as registered when the restarted tuner derives another in its
place (an outcome recovered after the crash led it elsewhere: :meth:`tuner.service.publish.MlflowPublisher._adopt`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from router_tuner.config.loader import ConfigError
from router_tuner.config.models import AdaptiveSettings, ConfigBundle
from router_tuner.executor.adaptive.checkpoint import TunerCheckpoint
from router_tuner.executor.adaptive.health import tuner_health
from router_tuner.executor.adaptive.records import DecisionRecord, TunerHealth
from router_tuner.features.context import decision_context
from router_tuner.router.events import ArmSafetyEvent, Intent, RouterEvent, ShadowDecision
from router_tuner.router.policy import RouterPolicy
from router_tuner.router.venue import TopOfBook
from router_tuner.tuner.arms import one_price_warning
from router_tuner.tuner.factory import live_tuner_issues
from router_tuner.tuner.policy_source import PolicySource
from router_tuner.tuner.reward_adjustment import MarketAfter, move_against_bps
from router_tuner.tuner.service.publish import PolicyPublisher
from router_tuner.tuner.service.tuner_service import ModeSource, TunerService
from router_tuner.tuner.state import StateFileError

logger = logging.getLogger(__name__)

TICK_REFRESH_CHANGE = 0.01
"""The tuner is told a symbol's tick again once the price has moved its weight in bps by this share: often enough to
follow a coin that halves, rare enough that a decision pays a division and a comparison."""


class AdaptiveStateAhead(RuntimeError):
    """An observed event was not journaled: the tuner's memory is ahead of the journal; restart to catch up."""


class CheckpointAheadOfJournal(StateFileError):
    """The saved tuner state learned more router events than the journal holds: it is another journal's, or this
    journal lost records (the caller asks the executor store which before blaming the tuner state)."""


@dataclass(frozen=True, slots=True)
class PendingLearn:
    """One observed RouterEvent waiting for its journal commit, with the records to journal beside it."""

    intent_id: str
    records: tuple[ShadowDecision | ArmSafetyEvent, ...]
    force_checkpoint: bool


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What :meth:`AdaptiveRouting.catch_up` did: journaled events re-learned, and those it could not learn."""

    relearned: int
    without_decision: int


def refuse_unadaptable(bundle: ConfigBundle) -> None:
    """Raise ``ConfigError`` for a tuner live adaptive routing cannot run (:func:`tuner.factory.live_tuner_issues`).
    ``live`` asks before it starts anything (it used to fail after opening the journal, as exit 1 "tuner state
    not restored")."""
    if issues := live_tuner_issues(bundle):
        raise ConfigError(issues)


class AdaptiveRouting:
    """The tuner service in the executor loop; see the module docstring for the call order.

    Parameters
    ----------
    service
        The tuner service, built without a state path (checkpoints write its state).
    champion
        Acting policy of shadow symbols: the registry champion, or the static policy without MLflow.
    checkpoint
        Where state is saved with its journal position.
    router_events_learned
        Journal position the service's state includes (from the checkpoint; 0 for a fresh state).
    settings
        ``executor.json`` ``adaptive``.
    modes
        The registry's go-live requests (``policy go-live``), ``None`` without MLflow.
    reads_route_end_mid
        The tuner learns against the mid at the route's end (``tuner.json`` ``reward_mid`` ``route_end``): the loop
        reads the touch when a route ends and passes its mid to :meth:`learn`.
    """

    def __init__(self, *, service: TunerService, champion: PolicySource, checkpoint: TunerCheckpoint,
                 router_events_learned: int, settings: AdaptiveSettings, modes: ModeSource | None,
                 reads_route_end_mid: bool) -> None:
        self.service = service
        self.reads_route_end_mid = reads_route_end_mid
        self._champion = champion
        self._checkpoint = checkpoint
        self._learned_position = router_events_learned
        self._since_checkpoint = 0
        self._settings = settings
        self._modes = modes
        self._mids: dict[str, deque[float]] = {s: deque(maxlen=settings.context_mids) for s in service.symbols}
        self._last_arm: dict[str, str] = {}
        self._tick_bps: dict[str, float] = {}
        self._pending: PendingLearn | None = None
        self._poisoned = False
        self.go_live_poll_errors = 0

    @classmethod
    def open(cls, *, bundle: ConfigBundle, publisher: PolicyPublisher, champion: PolicySource,
             checkpoint: TunerCheckpoint, journal_router_events: int, modes: ModeSource | None) -> AdaptiveRouting:
        """Restore the last checkpoint (or start fresh at the journal's start, checkpointed at once: the executor's
        catch-up then learns every journaled event a tuner decided).

        Refuses a tuner live adaptive routing cannot run (:func:`refuse_unadaptable`: a reward that needs the mid a
        horizon after a fill, which this loop does not have when the route ends; a learner the arm grid cannot
        carry).
        """
        refuse_unadaptable(bundle)
        symbols = sorted(bundle.executor.instruments)
        restored = checkpoint.restore(bundle, symbols, publisher)
        if restored.manifest is not None and restored.manifest.router_events_learned > journal_router_events:
            raise CheckpointAheadOfJournal(
                f"{checkpoint.path} has learned {restored.manifest.router_events_learned} router events but the "
                f"journal holds {journal_router_events}: state of another journal?")
        position = restored.manifest.router_events_learned if restored.manifest is not None else 0
        adaptive = cls(service=restored.service, champion=champion, checkpoint=checkpoint,
                       router_events_learned=position, settings=bundle.executor.adaptive, modes=modes,
                       reads_route_end_mid=bundle.tuner.reward_mid == "route_end")
        if restored.manifest is None:
            adaptive.checkpoint()
        return adaptive

    # --- deciding ---------------------------------------------------------------------------------

    def current(self, symbol: str) -> RouterPolicy:
        """The symbol's acting version for health: the tuner's published one (live) or the champion (shadow)."""
        if self.service.mode(symbol) == "shadow":
            return self._champion.current(symbol)
        return self.service.tuner(symbol).policy

    def note_mid(self, symbol: str, mid: float) -> None:
        """Remember a mid the executor read; the context's volatility comes from the last few."""
        mids = self._mids.get(symbol)
        if mids is not None:
            mids.append(mid)

    def decide(self, intent: Intent, book: TopOfBook, *, order_qty: float, tick_size: float,
               now_ns: int) -> tuple[RouterPolicy, DecisionRecord]:
        """The policy to route ``intent`` with, and the record to store with its Submission; ``tick_size`` is the
        instrument's (``executor.json`` ``instruments``), which the tuner needs in bps of the price.

        Raises ``ValueError`` when the touch cannot give a context (empty side, crossed book).
        """
        self._require_consistent()
        symbol = intent.symbol
        self.note_mid(symbol, book.mid)
        context = decision_context(bid=book.bid, ask=book.ask, bid_qty=book.bid_qty, ask_qty=book.ask_qty,
                                   recent_mids=np.fromiter(self._mids[symbol], dtype=np.float64),
                                   order_qty=order_qty, side=intent.side, ts_ns=now_ns)
        self._follow_tick(symbol, tick_size / book.mid * 1e4)  # after the context: a touch it refuses has no mid
        mode = self.service.mode(symbol)
        shadow: ShadowDecision | None = None
        if mode == "shadow":
            policy = self._champion.current(symbol)
            shadow = self.service.shadow(symbol, context, policy, intent_id=intent.intent_id, ts_ns=now_ns)
        else:
            policy = self.service.decide(symbol, context)
        return policy, DecisionRecord(intent_id=intent.intent_id, symbol=symbol, mode=mode, context=context,
                                      shadow=shadow)

    def _follow_tick(self, symbol: str, tick_bps: float) -> None:
        """Tell ``symbol``'s learner its tick in bps of the price (:meth:`~tuner.learners.base.Learner.set_tick_bps`)
        at its first decision and when it moved by ``TICK_REFRESH_CHANGE``; the first time, warn in one line when the
        grid's offsets post at one price on it."""
        told = self._tick_bps.get(symbol)
        if told is not None and abs(tick_bps - told) <= TICK_REFRESH_CHANGE * told:
            return
        learner = self.service.tuner(symbol).learner
        learner.set_tick_bps(tick_bps)
        self._tick_bps[symbol] = tick_bps
        if told is None and (warning := one_price_warning(symbol, learner.grid, tick_bps)) is not None:
            logger.warning("%s", warning)

    # --- learning ---------------------------------------------------------------------------------

    def learn(self, event: RouterEvent, decision: DecisionRecord | None, *, end_mid: float | None) -> PendingLearn:
        """Observe ``event`` (memory only); journal the returned records with it, then call :meth:`committed`.

        ``end_mid``: the mid read when the route ended (``reads_route_end_mid``; ``None`` when not read, or the
        read failed: the event is then learned at its journaled cost)."""
        self._require_consistent()
        if decision is None:
            pending = PendingLearn(intent_id=event.intent_id, records=(), force_checkpoint=False)
        else:
            records, force = self._observe(event, decision, end_mid)
            if decision.shadow is not None:
                records = (decision.shadow, *records)
            self._last_arm[event.symbol] = event.arm
            pending = PendingLearn(intent_id=event.intent_id, records=records, force_checkpoint=force)
        self._pending = pending
        return pending

    def committed(self, pending: PendingLearn) -> None:
        """The batch of ``pending`` is in the journal: count it and checkpoint when due."""
        if self._pending is not pending:
            raise RuntimeError(f"committed({pending.intent_id}) without a matching learn()")
        self._pending = None
        self._learned_position += 1
        self._since_checkpoint += 1
        if pending.force_checkpoint or self._since_checkpoint >= self._settings.checkpoint_every_n_events:
            self.checkpoint()

    def journal_failed(self) -> None:
        """The journal append after :meth:`learn` failed: never decide nor checkpoint again in this process."""
        self._poisoned = True

    def catch_up(self, events: Sequence[RouterEvent], decisions: Mapping[str, DecisionRecord]) -> CatchUp:
        """Re-learn the journaled RouterEvents after the checkpoint's position (start only; journals nothing)."""
        self._require_consistent()
        relearned = missing = 0
        for event in events[self._learned_position:]:
            decision = decisions.get(event.intent_id)
            if decision is None:
                missing += 1
            else:
                self._observe(event, decision, None)  # the mid at its end was not journaled: learned as journaled
                self._last_arm[event.symbol] = event.arm
                relearned += 1
            self._learned_position += 1
        for event in events[-self._settings.context_mids:]:
            self.note_mid(event.symbol, event.arrival_mid)
        if relearned or missing:
            self.checkpoint()
        return CatchUp(relearned=relearned, without_decision=missing)

    def checkpoint(self) -> None:
        """Save the tuner state with the journal position it includes (refused when memory is ahead)."""
        self._require_consistent()
        self._checkpoint.save(self.service, router_events_learned=self._learned_position)
        self._since_checkpoint = 0

    # --- the health timer -------------------------------------------------------------------------

    def poll_go_live(self) -> list[str]:
        """Take live every shadow symbol the registry marks ``live``; checkpoint and log each move."""
        if self._modes is None:
            return []
        self._require_consistent()
        try:
            moved = self.service.follow_go_live_requests(self._modes)
        except Exception as error:  # the registry is outside the process: keep routing, count and log
            self.go_live_poll_errors += 1
            logger.warning("go-live requests not read: %s: %s", type(error).__name__, error)
            return []
        for symbol in moved:
            logger.info("%s: shadow -> live (registry go-live request)", symbol)
        if moved:
            self.checkpoint()
        return moved

    def health(self, now_ns: int) -> TunerHealth:
        manifest = self._checkpoint.manifest
        return tuner_health(self.service, last_arms=self._last_arm, now_ns=now_ns,
                            router_events_learned=self._learned_position,
                            checkpoint_generation=manifest.generation if manifest is not None else 0)

    @property
    def router_events_learned(self) -> int:
        return self._learned_position

    # --- internals --------------------------------------------------------------------------------

    def _observe(self, event: RouterEvent, decision: DecisionRecord,
                 end_mid: float | None) -> tuple[tuple[ArmSafetyEvent, ...], bool]:
        if decision.intent_id != event.intent_id or decision.symbol != event.symbol:
            raise ValueError(f"decision of {decision.symbol}/{decision.intent_id} given for event of "
                             f"{event.symbol}/{event.intent_id}")
        after = None
        if self.reads_route_end_mid:
            move = None if end_mid is None else move_against_bps(event.side, event.arrival_mid, end_mid)
            after = MarketAfter(markout_bps=None, move_to_end_bps=move)
        result = self.service.observe(event, decision.context, after)
        if result.went_live:
            logger.info("%s: shadow -> live (go-live gate passed: %s)", event.symbol,
                        result.gate.reason if result.gate is not None else "")
        if result.published is not None:
            logger.info("%s: published %s v%d arm %s", event.symbol, result.published.policy_id,
                        result.published.version, result.published.arm)
        records = (result.safety,) if result.safety is not None else ()
        return records, result.published is not None or result.went_live

    def _require_consistent(self) -> None:
        if self._poisoned:
            raise AdaptiveStateAhead("a learned event was not journaled: restart to catch up from the checkpoint")
        if self._pending is not None:
            raise AdaptiveStateAhead(f"event of {self._pending.intent_id} learned but not committed to the journal")
