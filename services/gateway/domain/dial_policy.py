"""The toll-fraud gate in front of every outbound dial. Pure: no I/O, every rule unit-tested."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from services.common.numbers import (
    MAX_INPUT_LENGTH,
    InvalidNumberError,
    PhoneNumber,
    parse_number,
)

# Parsing a number costs about as much as the rest of /twiml/voice together, and salespeople
# call the same customers again and again: decisions are remembered per (To, countries).
# Bounded, and only for input short enough to be a number (longer input is refused at once).
DECISIONS_CACHED = 4096


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
    if len(raw_to) > MAX_INPUT_LENGTH:
        return _decide(raw_to, tuple(allowed_regions))
    return _decide_cached(raw_to, tuple(allowed_regions))


def _decide(raw_to: str, allowed_regions: tuple[str, ...]) -> DialDecision:
    try:
        number = parse_number(raw_to, default_region=allowed_regions[0])
    except InvalidNumberError as exc:
        return DialDecision(None, str(exc))
    if number.region not in allowed_regions:
        return DialDecision(None, f"country {number.region or 'unknown'} not allowed")
    if number.is_premium:
        return DialDecision(None, "premium-rate or shared-cost number")
    return DialDecision(number)


# Decisions and numbers are frozen values: sharing one between requests is safe.
_decide_cached = functools.lru_cache(maxsize=DECISIONS_CACHED)(_decide)
