"""The toll-fraud gate in front of every outbound dial. Pure: no I/O, every rule unit-tested."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.common.numbers import InvalidNumberError, PhoneNumber, parse_number


@dataclass(frozen=True, slots=True)
class DialDecision:
    number: PhoneNumber | None
    refusal: str | None = None

    @property
    def allowed(self) -> bool:
        return self.number is not None


def decide_dial(raw_to: str | None, allowed_regions: Sequence[str]) -> DialDecision:
    """The toll-fraud gate: only valid numbers, in allowed countries, never premium-rate."""
    if not raw_to:
        return DialDecision(None, "no number given")
    try:
        number = parse_number(raw_to, default_region=allowed_regions[0])
    except InvalidNumberError as exc:
        return DialDecision(None, str(exc))
    if number.region not in allowed_regions:
        return DialDecision(None, f"country {number.region or 'unknown'} not allowed")
    if number.is_premium:
        return DialDecision(None, "premium-rate or shared-cost number")
    return DialDecision(number)
