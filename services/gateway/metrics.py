"""The gateway's own Prometheus metrics.

Its counters are :class:`LoopCounter`: everything the gateway counts, it counts on the event
loop's thread, and the status callbacks and TwiML answers count on every request."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from services.common.observability import Count, LoopCounter

# Every ``reason`` of calltrail_requests_rejected_total, created at 0 when the gateway starts (as
# the published outcomes are), so that ``increase()`` sees the first refusals after a restart.
REJECTION_REASONS = ("signature", "token_key", "rate_limit_address", "rate_limit_identity")


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.callbacks = LoopCounter(
            "calltrail_status_callbacks_total",
            "Accepted status callbacks by call status.",
            ["status"],
            registry=registry,
        )
        self.published = LoopCounter(
            "calltrail_events_published_total",
            "Events stored, by where: broker (acknowledged), spool (broker away), failed.",
            ["outcome"],
            registry=registry,
        )
        self.publish_groups = LoopCounter(
            "calltrail_publish_groups_total",
            "Groups of events stored together (group commit): events / groups is the group size.",
            registry=registry,
        )
        self.spool_depth = Gauge(
            "calltrail_spool_depth", "Events waiting in the local spool.", registry=registry
        )
        self.tokens = LoopCounter(
            "calltrail_access_tokens_issued_total", "Access tokens issued.", registry=registry
        )
        self.dials = LoopCounter(
            "calltrail_dials_total",
            "TwiML dial decisions by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.inbound = LoopCounter(
            "calltrail_inbound_calls_total",
            "Inbound calls by kind (number, line) and step: rung, answered, forwarded,"
            " forward_answered, unanswered, voicemail.",
            ["kind", "outcome"],
            registry=registry,
        )
        self.conversation_callbacks = LoopCounter(
            "calltrail_conversation_callbacks_total",
            "Accepted recording and transcription callbacks, by kind (recording, transcript)"
            " and event (the recording's status, or the transcription event).",
            ["kind", "event"],
            registry=registry,
        )
        self._callbacks_by_status: dict[str, Count] = {}
        self._conversation_callbacks: dict[tuple[str, str], Count] = {}
        # Bound once: labels() builds and hashes a tuple each call, on every /twiml/voice.
        self.dialled = self.dials.labels("dialled")
        self.dial_refused = self.dials.labels("refused")
        self.rejected = LoopCounter(
            "calltrail_requests_rejected_total",
            "Requests refused before any work, by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in REJECTION_REASONS:
            self.rejected.labels(reason)

    def callback(self, status: str) -> Count:
        """``callbacks.labels(status)``, bound once per status (labels() builds and hashes a
        tuple each call, on every status callback)."""
        child = self._callbacks_by_status.get(status)
        if child is None:
            child = self._callbacks_by_status[status] = self.callbacks.labels(status)
        return child

    def conversation_callback(self, kind: str, event: str) -> Count:
        """``conversation_callbacks.labels(kind, event)``, bound once per pair (a call's
        utterances are its busiest callbacks)."""
        child = self._conversation_callbacks.get((kind, event))
        if child is None:
            child = self._conversation_callbacks[kind, event] = self.conversation_callbacks.labels(
                kind, event
            )
        return child
