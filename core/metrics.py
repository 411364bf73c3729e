"""The process's Prometheus metrics: one object per event, incremented where the event happens.

Every metric lives here so that its name, type and meaning are read in one
place; the code that sees the event increments it (``metrics.DELIVERIES.inc()``):

- ``MESSAGES_STORED``, ``CHANGES_STORED``: ``messaging.services`` and
  ``messaging.changes``, when the row's transaction commits.
- ``DELIVERIES``, ``DIRECT_WRITES``, ``GAP_FILLS``: ``gateway.delivery``.
- ``CONNECTIONS``, ``WS_CLOSES``, ``ACK_SECONDS``: ``gateway.consumer``.
- ``RATE_LIMITED``: ``core.errors.RateLimited``, the one refusal every limit raises.
- ``LAYER_ERRORS``: ``realtime.publish`` and ``realtime.hub``.

They are registered in prometheus-client's default registry, beside its
process collector (resident memory, open file descriptors, CPU), and served by
``render`` (``GET /metrics``, ``core.metrics_view``). Values are this process's
own: scrape every server process.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily


class LoopCounter:
    """A counter for the event loop's per-recipient path: a plain number, no lock.

    prometheus-client's ``Counter.inc`` takes a lock and checks its arguments
    (0.3 µs here, six times this one's 50 ns): once per recipient of a
    broadcast, about 1% of a delivery's CPU (~25 µs). Only the event loop's
    thread increments this one, so the lock buys nothing.
    """

    def __init__(self, name: str, documentation: str) -> None:
        self.name, self.documentation, self.value = name, documentation, 0
        REGISTRY.register(self)

    def inc(self, amount: int = 1) -> None:
        self.value += amount

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation)
        family.add_metric([], self.value)
        yield family


CONNECTIONS = Gauge("chat_connections", "Open WebSockets (accepted, not yet closed).")
MESSAGES_STORED = Counter("chat_messages_stored", "New messages committed.")
CHANGES_STORED = Counter("chat_changes_stored", "Message changes committed (edits, deletions, reactions).")
DELIVERIES = LoopCounter(
    "chat_deliveries", "message and message_updated frames sent to sockets, live or gap-filled."
)
DIRECT_WRITES = LoopCounter(
    "chat_direct_writes",
    "Frames of broadcasts written straight to a socket's transport, below ASGI (gateway.wire).",
)
GAP_FILLS = Counter("chat_gap_fills", "Gaps a socket filled from the database before a live message.")
WS_CLOSES = Counter(
    "chat_ws_closes",
    "Closed WebSockets by close code: the server's when it closed, else the client's.",
    ["code"],
)
RATE_LIMITED = Counter("chat_rate_limited", "Requests and frames refused by a rate limit.", ["kind"])
LAYER_ERRORS = Counter(
    "chat_layer_errors", "Channel-layer operations that failed (publish, receive, group add or discard)."
)
ACK_SECONDS = Histogram(
    "chat_ack_seconds",
    "Time from a message frame's arrival to its ack.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def render() -> tuple[bytes, str]:
    """The exposition text of every registered metric, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
