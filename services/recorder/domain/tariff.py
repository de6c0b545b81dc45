"""Tariffs as data: rates per started minute by destination, number rental per month."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any


class TariffError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Tariff:
    effective_from: date
    currency: str
    per_minute: Mapping[str, Decimal] = field(default_factory=dict)
    number_rental_per_month: Decimal | None = None

    def rate_for(self, key: str) -> Decimal | None:
        return self.per_minute.get(key)


@dataclass(frozen=True, slots=True)
class TariffBook:
    """Every tariff, oldest first; the one in force on a day is the latest that started."""

    tariffs: Sequence[Tariff]

    def __post_init__(self) -> None:
        if not self.tariffs:
            raise TariffError("a tariff file needs at least one [[tariff]]")
        days = [t.effective_from for t in self.tariffs]
        if len(set(days)) != len(days):
            raise TariffError("two tariffs take effect on the same day")
        object.__setattr__(
            self, "tariffs", tuple(sorted(self.tariffs, key=lambda t: t.effective_from))
        )

    def in_force(self, day: date) -> Tariff | None:
        current = None
        for tariff in self.tariffs:
            if tariff.effective_from <= day:
                current = tariff
        return current


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TariffError(f"{where} must be a number")
    try:
        # str() first: a TOML float like 5.4 must become Decimal("5.4"), not 5.4000000000000003…
        amount = Decimal(str(value))
    except InvalidOperation:
        raise TariffError(f"{where} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise TariffError(f"{where} must be a non-negative number")
    return amount


def parse_tariffs(text: str) -> TariffBook:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TariffError(f"not valid TOML: {exc}") from None
    entries = doc.get("tariff")
    if not isinstance(entries, list):
        raise TariffError("expected one or more [[tariff]] tables")
    tariffs = []
    for index, entry in enumerate(entries):
        where = f"tariff #{index + 1}"
        if not isinstance(entry, dict):
            raise TariffError(f"{where}: must be a table ([[tariff]])")
        effective = entry.get("effective_from")
        # A TOML date-time is a datetime, a date subclass that cannot be compared with a day.
        if not isinstance(effective, date) or isinstance(effective, datetime):
            raise TariffError(f"{where}: effective_from must be a date (YYYY-MM-DD)")
        currency = entry.get("currency")
        if (
            not isinstance(currency, str)
            or len(currency) != 3
            or not (currency.isascii() and currency.isalpha())
        ):
            raise TariffError(f"{where}: currency must be an ISO 4217 code such as JPY")
        rates = entry.get("per_minute", {})
        if not isinstance(rates, dict):
            raise TariffError(f"{where}: per_minute must be a table")
        rental = entry.get("number_rental_per_month")
        tariffs.append(
            Tariff(
                effective_from=effective,
                currency=currency.upper(),
                per_minute={
                    str(k): _decimal(v, f"{where}: per_minute.{k}") for k, v in rates.items()
                },
                number_rental_per_month=(
                    None
                    if rental is None
                    else _decimal(rental, f"{where}: number_rental_per_month")
                ),
            )
        )
    return TariffBook(tariffs)
