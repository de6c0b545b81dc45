"""The gateway's counters that alerts watch exist from the start, at 0."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from services.gateway.metrics import REJECTION_REASONS, GatewayMetrics


def test_every_rejection_reason_is_exposed_at_zero_from_the_start() -> None:
    # increase() over a series born at 1 is 0: the first burst of bad signatures after a
    # restart would go unseen by CalltrailTwilioSignatureRejected.
    registry = CollectorRegistry()
    GatewayMetrics(registry)
    for reason in REJECTION_REASONS:
        assert (
            registry.get_sample_value("calltrail_requests_rejected_total", {"reason": reason}) == 0
        )


def test_the_reasons_counted_are_the_reasons_declared() -> None:
    handlers = Path(__file__).resolve().parents[3] / "services/gateway/entrypoints/handlers.py"
    counted = set(re.findall(r'rejected\.labels\("(\w+)"\)', handlers.read_text()))
    assert counted == set(REJECTION_REASONS)
