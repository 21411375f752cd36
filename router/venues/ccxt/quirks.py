"""Per-exchange quirks of the live venue, as data: the adapter's code never names an exchange.

Each entry says how one ccxt exchange spells what the venue protocol needs (client order ids, post-only,
reduce-only, hedge-mode position sides, fills by order) and which native error codes mean which
``router.venue`` error. Adding an exchange is adding an entry, after checking it against its API docs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from router_tuner.router.venue import (
    BelowMinNotional,
    InsufficientMargin,
    InvalidOrder,
    OrderNotFound,
    PostOnlyRejected,
    ReduceOnlyRejected,
    StopKind,
    StopWouldTrigger,
    TimeInForce,
    VenueError,
    VenueTimeout,
    VenueUnavailable,
)


class DuplicateClientOrderId(VenueError):
    """The venue already has a live order with this client order id."""


@dataclass(frozen=True, slots=True)
class ExchangeQuirks:
    """How one exchange spells the venue protocol.

    ``time_in_force_params`` spell each time in force of a plain limit order; a post-only order sends
    ``post_only_params`` instead (Binance: the GTX time in force is its post-only GTC) and a market
    order sends none (it is IOC by nature; Binance answers -1106 to a time in force on it).
    ``hedge_mode_sends_reduce_only`` is False where the exchange infers reduce-only from the position
    side in hedge mode and rejects an explicit flag (Binance USDⓈ-M: -1106). ``trades_order_id_param``
    is the ``fetch_my_trades`` parameter that narrows trades to one order. Protective stops: the ccxt
    ``params`` key carrying each stop kind's trigger (ccxt turns it into the exchange's order type), the id
    and working-type keys, ``stop_params`` sent with every stop (Binance: closePosition) and
    ``stop_query_params`` with every fetch, cancel and listing of stops (``trigger``: ccxt then uses the
    algo-service endpoints).
    ``ccxt_options`` are merged
    into the ccxt client's options (turning off calls the venue does not need).
    ``listen_key_expired_event`` is the user-data event that says the stream's key died while its
    connection stays open (Binance: ``listenKeyExpired``; ccxt.pro ignores it), ``None`` where there is none.
    """

    client_order_id_param: str
    query_client_order_id_param: str
    post_only_params: Mapping[str, str]
    time_in_force_params: Mapping[TimeInForce, Mapping[str, str]]
    reduce_only_params: Mapping[str, str]
    position_side_param: str
    hedge_mode_sends_reduce_only: bool
    trades_order_id_param: str
    retry_after_header: str
    stop_price_params: Mapping[StopKind, str]
    stop_client_order_id_param: str
    stop_working_type_param: str
    stop_params: Mapping[str, object]
    stop_query_params: Mapping[str, object]
    error_codes: Mapping[str, type[VenueError]]
    ccxt_options: Mapping[str, object]
    listen_key_expired_event: str | None


BINANCE_USDM = ExchangeQuirks(
    client_order_id_param="newClientOrderId",
    query_client_order_id_param="origClientOrderId",
    post_only_params=MappingProxyType({"timeInForce": "GTX"}),
    time_in_force_params=MappingProxyType(
        {
            "GTC": MappingProxyType({"timeInForce": "GTC"}),
            "IOC": MappingProxyType({"timeInForce": "IOC"}),  # fills what it can, status EXPIRED for the rest
        }
    ),
    reduce_only_params=MappingProxyType({"reduceOnly": "true"}),
    position_side_param="positionSide",
    hedge_mode_sends_reduce_only=False,
    trades_order_id_param="orderId",
    retry_after_header="Retry-After",
    stop_price_params=MappingProxyType({"stop_market": "stopLossPrice", "take_profit_market": "takeProfitPrice"}),
    stop_client_order_id_param="clientAlgoId",
    stop_working_type_param="workingType",
    stop_params=MappingProxyType({"closePosition": True}),
    stop_query_params=MappingProxyType({"trigger": True}),
    error_codes=MappingProxyType(
        {
            # Binance: a 5xx "is NOT a failure operation; the execution status is UNKNOWN and could have been a
            # success". ccxt maps these to OperationFailed (a plain error): resolve them by client order id instead.
            "-1000": VenueTimeout,  # UNKNOWN: An unknown error occurred while processing the request
            "-1001": VenueTimeout,  # DISCONNECTED: Internal error; unable to process your request
            "-1006": VenueTimeout,  # UNEXPECTED_RESP: ... from the message bus. Execution status unknown
            # SERVER_BUSY, "try again in a few minutes": ccxt's plain OperationFailed ended a read (a poll, a cancel)
            # at once; as unavailable a read is retried (bounded) and a new order is looked up, never resent
            "-1008": VenueUnavailable,
            "-2021": StopWouldTrigger,  # Order would immediately trigger
            "-4137": InvalidOrder,  # Quantity must be zero with closePosition equals true
            "-4138": InvalidOrder,  # Reduce only must be true with closePosition equals true
            "-4014": InvalidOrder,  # Price not increased by tick size
            "-5022": PostOnlyRejected,  # GTX order would have executed as taker
            "-2019": InsufficientMargin,  # Margin is insufficient
            "-2018": InsufficientMargin,  # Balance is insufficient
            "-4164": BelowMinNotional,  # Order's notional must be no smaller than ...
            "-2022": ReduceOnlyRejected,  # ReduceOnly Order is rejected
            "-2013": OrderNotFound,  # Order does not exist (query)
            "-2011": OrderNotFound,  # Unknown order sent (cancel)
            "-4116": DuplicateClientOrderId,  # ClientOrderId is duplicated
        }
    ),
    ccxt_options=MappingProxyType(
        {
            # The spot wallet's currency list is a private sapi call the futures venue never needs.
            "fetchCurrencies": False,
            # open_orders(None) is a deliberate all-symbols query (reconciliation), not a mistake.
            "warnOnFetchOpenOrdersWithoutSymbol": False,
            # ccxt.pro's watch_orders would also fetch a positions snapshot by REST at every (re)connect for a
            # positions watch the order feed never makes.
            "watchPositions": {"fetchPositionsSnapshot": False},
        }
    ),
    # USDⓈ-M user data streams: "No more user data event will be updated after this event received until a
    # new valid listenKey used" (Binance docs, Event: User Data Stream Expired).
    listen_key_expired_event="listenKeyExpired",
)

QUIRKS: Mapping[str, ExchangeQuirks] = MappingProxyType({"binanceusdm": BINANCE_USDM})


def quirks_for(exchange_id: str) -> ExchangeQuirks:
    """The quirks entry of ``exchange_id``; an exchange without one is refused, not guessed."""
    try:
        return QUIRKS[exchange_id]
    except KeyError:
        raise ValueError(
            f"no quirks mapping for exchange {exchange_id!r}; supported: {', '.join(sorted(QUIRKS))}"
        ) from None
