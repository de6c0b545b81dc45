"""The recorder's settings (CONTRACT.md section 7)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from services.common.database import check_database_url
from services.common.settings import (
    ConversationSettings,
    CsvList,
    KafkaSettings,
    ServiceSettings,
)
from services.recorder.domain.customer_lookup import LookupFields, check_field_code
from services.recorder.domain.history import HistoryFields, WritebackMode
from services.recorder.domain.missed import Mention, parse_mentions

DEFAULT_TARIFF = Path(__file__).parent / "tariffs" / "default.toml"


class DatabaseSettings(ServiceSettings):
    """Just the database: what `calltrail migrate` and `calltrail costs` need."""

    database_url: str
    billing_tz: str = "Asia/Tokyo"
    calltrail_tariff: Path = DEFAULT_TARIFF

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return check_database_url(value)

    @field_validator("billing_tz")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as Asia/Tokyo") from None
        return value

    @field_validator("calltrail_tariff")
    @classmethod
    def _tariff_file(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError("must name a readable tariff file")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.billing_tz)


class KintoneSettings(ConversationSettings):
    """kintone write-back (CONTRACT.md section 6). Field codes default to Japanese names.
    With RECORDING or TRANSCRIPTION on, a call also carries its conversation (section 11)."""

    kintone_writeback: WritebackMode = WritebackMode.OFF
    kintone_base_url: str | None = None
    kintone_api_token: SecretStr | None = None  # one or more, comma-separated
    kintone_guest_space: int | None = Field(default=None, ge=1)
    kintone_history_table: str = "通話履歴"
    kintone_call_log_app: int | None = Field(default=None, ge=1)
    kintone_field_datetime: str = "通話日時"
    # The number column of the history table. kintone field codes are unique within an app,
    # table columns included, so it cannot be 電話番号 beside the customer's own 電話番号; an app
    # set up with the old default keeps working with KINTONE_FIELD_NUMBER=電話番号.
    kintone_field_number: str = "通話番号"
    kintone_field_result: str = "通話結果"
    kintone_field_seconds: str = "通話時間"
    kintone_field_charge: str = "通話料金"
    kintone_field_user: str = "担当者"
    kintone_field_call_sid: str = "CallSid"
    kintone_field_direction: str = "発着信"  # 着信 (inbound) or 発信 (outbound)
    # Inbound calls (CONTRACT.md section 9): the customer app they are matched in, and its
    # fields. Unset: inbound calls are recorded but not written to kintone.
    kintone_customer_app: int | None = Field(default=None, ge=1)
    kintone_field_phone: str = "電話番号"
    kintone_field_line_user_id: str = "LINEユーザーID"
    # App mode: the customer's record number, for a related-records field on the customer app.
    kintone_field_customer_record: str = "顧客レコード番号"
    # Wait this long after a call ends before writing it, so its last legs are in.
    kintone_writeback_delay_s: float = Field(default=10.0, ge=0, le=3600)
    kintone_max_concurrency: int = Field(default=10, ge=1, le=100)
    # Who a missed call is told to (CONTRACT.md section 12): kintone users, groups or
    # organizations, mentioned in a comment on each matched customer record. Empty: nobody.
    missed_call_notify: CsvList = Field(default_factory=list)
    # The conversation on the record (CONTRACT.md section 11, "On the record"): the transcript
    # (TRANSCRIPTION=on) and the recording's file (RECORDING=dual).
    kintone_field_transcript: str = "通話内容"
    kintone_field_recording: str = "録音"
    transcript_max_chars: int = Field(default=20_000, ge=100, le=1_000_000)
    # A call is written once its recording and transcription are done, or this long after it
    # ended, whichever comes first. At most 10 minutes: CalltrailKintoneWritebackFailing fires
    # when a call has waited 15.
    settle_timeout_s: float = Field(default=300.0, ge=0, le=600)
    # false: delete the recording from Twilio once kintone holds its file.
    recording_keep_on_twilio: bool = True

    @field_validator("missed_call_notify")
    @classmethod
    def _mentions(cls, value: list[str]) -> list[str]:
        parse_mentions(value)  # code, USER:code, GROUP:code or ORGANIZATION:code; at most 10
        return value

    @model_validator(mode="after")
    def _complete(self) -> KintoneSettings:
        if self.missed_call_notify and (
            self.kintone_writeback is WritebackMode.OFF or self.kintone_customer_app is None
        ):
            raise ValueError(
                "MISSED_CALL_NOTIFY needs KINTONE_WRITEBACK (subtable or app) and "
                "KINTONE_CUSTOMER_APP: missed calls are told on the customer records they match"
            )
        if self.kintone_writeback is WritebackMode.OFF:
            return self
        missing = [
            name
            for name, value in (
                ("kintone_base_url", self.kintone_base_url),
                ("kintone_api_token", self.kintone_api_token),
            )
            if not value
        ]
        if self.kintone_writeback is WritebackMode.APP and not self.kintone_call_log_app:
            missing.append("kintone_call_log_app")
        if missing:
            names = ", ".join(name.upper() for name in missing)
            raise ValueError(f"KINTONE_WRITEBACK={self.kintone_writeback.value} needs {names}")
        return self

    @field_validator("kintone_field_phone", "kintone_field_line_user_id")
    @classmethod
    def _query_field_code(cls, value: str) -> str:
        # These go into a records query: no spaces, quotes, parentheses or operators.
        return check_field_code(value)

    def missed_call_mentions(self) -> tuple[Mention, ...]:
        return parse_mentions(self.missed_call_notify)

    def lookup_fields(self) -> LookupFields:
        return LookupFields(
            phone=self.kintone_field_phone, line_user_id=self.kintone_field_line_user_id
        )

    def history_fields(self) -> HistoryFields:
        return HistoryFields(
            datetime=self.kintone_field_datetime,
            number=self.kintone_field_number,
            result=self.kintone_field_result,
            seconds=self.kintone_field_seconds,
            charge=self.kintone_field_charge,
            user=self.kintone_field_user,
            call_sid=self.kintone_field_call_sid,
            customer_record=self.kintone_field_customer_record,
            direction=self.kintone_field_direction,
            transcript=self.kintone_field_transcript if self.transcription_on else None,
            recording=self.kintone_field_recording if self.recording_on else None,
        )

    @property
    def kintone_tokens(self) -> list[str]:
        if self.kintone_api_token is None:
            return []
        return [
            t.strip() for t in self.kintone_api_token.get_secret_value().split(",") if t.strip()
        ]


class RecorderSettings(DatabaseSettings, KafkaSettings, KintoneSettings):
    recorder_group: str = "calltrail-recorder"
    recorder_host: str = "0.0.0.0"  # noqa: S104 - a container listens on all interfaces
    recorder_port: int = Field(default=8081, ge=0, le=65_535)
    recorder_batch_max: int = Field(default=5000, ge=1, le=50_000)
    # Numbers the company holds, for rental charges: seeded from the caller ID.
    twilio_caller_id: str | None = None
    home_region: str = "JP"

    def secret_values(self) -> list[str]:
        from sqlalchemy.engine import make_url

        password = make_url(self.database_url).password
        return ([password] if password else []) + self.kintone_tokens


_SID = {
    "twilio_account_sid": "AC",
    "twilio_api_key": "SK",
    "twilio_twiml_app_sid": "AP",
}
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_SIP_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.sip\.twilio\.com")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def _https_url(value: str) -> str:
    """An https URL; plain http only on this machine (local trials against the stand-in)."""
    parts = urlsplit(value)
    local = parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS
    if not parts.hostname or not (parts.scheme == "https" or local):
        raise ValueError("must be an https:// URL (http only for 127.0.0.1 or localhost)")
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query or fragment")
    return value.rstrip("/")


def _check_sid(value: str, info: ValidationInfo) -> str:
    prefix = _SID[str(info.field_name)]
    if re.fullmatch(prefix + "[0-9a-fA-F]{32}", value) is None:
        raise ValueError(f"must be {prefix} followed by 32 hexadecimal digits")
    return value


class TwilioApiSettings(ServiceSettings):
    """Twilio's REST API as ``calltrail reconcile`` reads it (CONTRACT.md section 10): an API
    key on the account, never the auth token."""

    twilio_account_sid: str
    twilio_api_key: str
    twilio_api_secret: SecretStr
    twilio_api_base_url: str = "https://api.twilio.com"

    @field_validator("twilio_account_sid", "twilio_api_key")
    @classmethod
    def _sid(cls, value: str, info: ValidationInfo) -> str:
        return _check_sid(value, info)

    @field_validator("twilio_api_base_url")
    @classmethod
    def _api_base_url(cls, value: str) -> str:
        return _https_url(value)


class TwilioAccountSettings(TwilioApiSettings):
    """What ``calltrail twilio status|provision`` need: the API, and the URLs and SIP settings
    that say what Twilio should hold."""

    twilio_twiml_app_sid: str | None = None  # empty: the one app named "calltrail"
    twilio_caller_id: str
    public_base_url: str
    twilio_sip_domain: str | None = None  # <name>.sip.twilio.com, for LINE
    line_sip_ips: CsvList = Field(default_factory=list)  # LINE's SIP addresses, IPv4

    @field_validator("twilio_twiml_app_sid")
    @classmethod
    def _app_sid(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _check_sid(value, info)

    @field_validator("twilio_caller_id")
    @classmethod
    def _caller_id(cls, value: str) -> str:
        if _E164.fullmatch(value) is None:
            raise ValueError("must be a number in E.164, e.g. +815012345678")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _public_base_url(cls, value: str) -> str:
        return _https_url(value)

    @field_validator("twilio_sip_domain")
    @classmethod
    def _sip_domain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        if _SIP_DOMAIN.fullmatch(value) is None:
            raise ValueError("must look like <name>.sip.twilio.com")
        return value

    @field_validator("line_sip_ips")
    @classmethod
    def _ipv4(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.IPv4Address(item)
            except ValueError:
                raise ValueError(
                    "must be comma-separated IPv4 addresses such as 203.0.113.10"
                ) from None
        return sorted(set(value), key=ipaddress.IPv4Address)

    @model_validator(mode="after")
    def _sip_complete(self) -> TwilioAccountSettings:
        if self.twilio_sip_domain and not self.line_sip_ips:
            raise ValueError("TWILIO_SIP_DOMAIN needs LINE_SIP_IPS (LINE's SIP addresses)")
        if self.line_sip_ips and not self.twilio_sip_domain:
            raise ValueError("LINE_SIP_IPS is set but TWILIO_SIP_DOMAIN is not")
        return self
