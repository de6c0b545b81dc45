"""Japanese (and other) phone numbers: E.164 and the kind of line, from ``phonenumbers``.

Shared because the gateway's dial policy and the recorder's destination types must agree on
what a number is. Pure: no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType

# Longer input is never a phone number; refuse it before the parser spends time on it.
MAX_INPUT_LENGTH = 32


class DestinationType(enum.StrEnum):
    """The ``calls.destination_type`` values (CONTRACT.md section 4)."""

    MOBILE = "mobile"
    LANDLINE = "landline"
    IP_PHONE = "ip_phone"
    TOLL_FREE = "toll_free"
    INTERNATIONAL = "international"
    CLIENT = "client"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    e164: str
    region: str | None
    line_type: int  # a phonenumbers.PhoneNumberType value

    @property
    def is_premium(self) -> bool:
        # Premium-rate and shared-cost numbers are the classic toll-fraud targets. Japan's
        # 0570 "Navi Dial" numbers (libphonenumber: UAN) cost the caller extra the same way.
        return self.line_type in (
            PhoneNumberType.PREMIUM_RATE,
            PhoneNumberType.SHARED_COST,
            PhoneNumberType.UAN,
        )

    def destination_type(self, home_region: str = "JP") -> DestinationType:
        if self.region != home_region:
            return DestinationType.INTERNATIONAL
        return _DESTINATION_BY_LINE_TYPE.get(self.line_type, DestinationType.UNKNOWN)


_DESTINATION_BY_LINE_TYPE = {
    PhoneNumberType.MOBILE: DestinationType.MOBILE,
    PhoneNumberType.FIXED_LINE: DestinationType.LANDLINE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE: DestinationType.LANDLINE,
    PhoneNumberType.VOIP: DestinationType.IP_PHONE,  # Japan's 050 numbers
    PhoneNumberType.TOLL_FREE: DestinationType.TOLL_FREE,
}


class InvalidNumberError(ValueError):
    pass


def parse_number(raw: str, default_region: str = "JP") -> PhoneNumber:
    """Normalise ``09012345678``, ``090-1234-5678`` or ``+819012345678`` to a valid number.

    Raises :class:`InvalidNumberError` for anything that is not a valid, dialable number.
    """
    text = raw.strip()
    if not text or len(text) > MAX_INPUT_LENGTH:
        raise InvalidNumberError("not a phone number")
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        raise InvalidNumberError("not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidNumberError("not a valid phone number")
    return PhoneNumber(
        e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        region=phonenumbers.region_code_for_number(number),
        line_type=phonenumbers.number_type(number),
    )
