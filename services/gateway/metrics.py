"""The gateway's own Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.callbacks = Counter(
            "calltrail_status_callbacks_total",
            "Accepted status callbacks by call status.",
            ["status"],
            registry=registry,
        )
        self.published = Counter(
            "calltrail_events_published_total",
            "Events stored, by where: broker (acknowledged), spool (broker away), failed.",
            ["outcome"],
            registry=registry,
        )
        self.publish_groups = Counter(
            "calltrail_publish_groups_total",
            "Groups of events stored together (group commit): events / groups is the group size.",
            registry=registry,
        )
        self.spool_depth = Gauge(
            "calltrail_spool_depth", "Events waiting in the local spool.", registry=registry
        )
        self.tokens = Counter(
            "calltrail_access_tokens_issued_total", "Access tokens issued.", registry=registry
        )
        self.dials = Counter(
            "calltrail_dials_total",
            "TwiML dial decisions by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.inbound = Counter(
            "calltrail_inbound_calls_total",
            "Inbound calls by kind (number, line) and step: rung, answered, forwarded,"
            " forward_answered, unanswered.",
            ["kind", "outcome"],
            registry=registry,
        )
        self._callbacks_by_status: dict[str, Counter] = {}
        # Bound once: labels() costs a lock and a tuple each call, on every /twiml/voice.
        self.dialled = self.dials.labels("dialled")
        self.dial_refused = self.dials.labels("refused")
        self.rejected = Counter(
            "calltrail_requests_rejected_total",
            "Requests refused before any work, by reason.",
            ["reason"],
            registry=registry,
        )

    def callback(self, status: str) -> Counter:
        """``callbacks.labels(status)``, bound once per status (labels() costs a lock and a
        tuple each call, on every status callback)."""
        child = self._callbacks_by_status.get(status)
        if child is None:
            child = self._callbacks_by_status[status] = self.callbacks.labels(status)
        return child
