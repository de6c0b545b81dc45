"""The gateway's settings (CONTRACT.md section 7)."""

from __future__ import annotations

import enum
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import phonenumbers
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from services.common.settings import ConversationSettings, CsvList, KafkaSettings
from services.gateway.domain.tokens import IDENTITY_PATTERN
from services.gateway.domain.twiml import (
    RECORDING_NOTICE_JA,
    VOICEMAIL_GREETING_JA,
    Conversation,
    VoicemailAnswer,
)

#: Twilio dials at most ten <Client> nouns in one <Dial>.
MAX_RING_IDENTITIES = 10


def _twilio_sid(prefix: str, what: str) -> Any:  # a pydantic FieldInfo, typed Any as Field()
    return Field(pattern=rf"^{prefix}[0-9A-Za-z]{{32}}$", description=what)


class Voicemail(enum.StrEnum):
    OFF = "off"
    ON = "on"  # a caller nobody answered may leave a message (CONTRACT.md section 12)


#: ``<Record maxLength>``'s range in seconds (Twilio's "TwiML Voice: <Record>": an integer
#: greater than 1, at most 14400 with the account's default maximum call duration); below five
#: seconds nobody can say who they are.
VOICEMAIL_MAX_S_RANGE = (5, 14_400)


class TranscriptionEngine(enum.StrEnum):
    """``transcriptionEngine`` of Twilio's ``<Transcription>`` noun (Twilio's "TwiML Voice:
    <Transcription>" page, attribute table: ``google`` (Twilio's default) or ``deepgram``)."""

    GOOGLE = "google"
    DEEPGRAM = "deepgram"


#: ``speechModel`` by engine, as the same page lists them: Google's Speech-to-Text models, and
#: Deepgram's Nova generations (``nova-2``, ``nova-3``) with or without a domain suffix
#: (``nova-2-phonecall``…, Deepgram's model names). A model of the other engine is refused.
SPEECH_MODELS: dict[TranscriptionEngine, re.Pattern[str]] = {
    TranscriptionEngine.GOOGLE: re.compile(
        r"telephony|telephony_short|medical_dictation|medical_conversation|long|short|chirp_2"
    ),
    TranscriptionEngine.DEEPGRAM: re.compile(r"nova-[23](-[a-z]{2,20})?"),
}
#: A BCP-47 language tag as Twilio takes them (``ja-JP``, ``en-US``, ``cmn-Hans-CN``, ``multi``).
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,3}")
#: A notice is a sentence or two; a longer value is a mistake (a file pasted in, say).
MAX_NOTICE_CHARS = 500


class _EmptyNotice(PydanticBaseSettingsSource):
    """``RECORDING_NOTICE=""`` means "no notice" (CONTRACT.md section 11), where every other
    setting set empty counts as unset (``env_ignore_empty``): this source says so for it alone."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ answers for the one field

    def __call__(self) -> dict[str, Any]:
        for name, value in os.environ.items():
            if name.upper() == "RECORDING_NOTICE" and not value.strip():
                return {"recording_notice": ""}
        return {}


class GatewaySettings(KafkaSettings, ConversationSettings):
    public_base_url: str
    twilio_account_sid: str = _twilio_sid("AC", "Account SID")
    twilio_auth_token: SecretStr
    twilio_api_key: str = _twilio_sid("SK", "API key SID")
    twilio_api_secret: SecretStr
    twilio_twiml_app_sid: str = _twilio_sid("AP", "TwiML App SID")
    twilio_caller_id: str
    twilio_edge: str = "tokyo"
    calltrail_token_key: SecretStr = Field(min_length=16)
    token_ttl_s: int = Field(default=600, ge=60, le=86_400)
    dial_allowed_countries: CsvList = Field(default_factory=lambda: ["JP"])
    kintone_base_url: str
    sip_forward_to: str | None = None
    # The ring group: the browser identities every inbound call rings (CONTRACT.md section 9).
    ring_identities: CsvList = Field(default_factory=list)
    # Its old name, still read; when both are set they must agree (see _one_ring_group).
    sip_ring_identities: CsvList = Field(default_factory=list)
    ring_timeout_s: int = Field(default=20, ge=5, le=600)
    inbound_forward_to: str | None = None
    # Twilio connection overrides appended to callback URLs, e.g. "rc=3&rp=all" (docs/gateway.md).
    status_callback_overrides: str = ""
    gateway_host: str = "0.0.0.0"  # noqa: S104 - a container listens on all interfaces
    gateway_port: int = Field(default=8080, ge=0, le=65_535)
    gateway_spool_path: Path = Path("var/gateway-spool.sqlite3")
    publish_timeout_s: float = Field(default=5.0, gt=0, le=14)
    shutdown_timeout_s: float = Field(default=20.0, gt=0)
    token_rate_per_identity: int = Field(default=10, ge=1, description="tokens per minute")
    token_rate_per_address: int = Field(default=60, ge=1, description="tokens per minute")
    # How many reverse proxies append to X-Forwarded-For in front of the gateway (0 = trust none).
    trusted_proxy_hops: int = Field(default=0, ge=0, le=5)
    # The conversation (CONTRACT.md section 11): each off by default, each on its own.
    transcription_language: str = "ja-JP"
    transcription_engine: TranscriptionEngine | None = None
    transcription_model: str | None = None
    recording_notice: str = Field(default=RECORDING_NOTICE_JA, max_length=MAX_NOTICE_CHARS)
    # Missed calls (CONTRACT.md section 12): off by default.
    voicemail: Voicemail = Voicemail.OFF
    voicemail_greeting: str = Field(
        default=VOICEMAIL_GREETING_JA, min_length=1, max_length=MAX_NOTICE_CHARS
    )
    voicemail_max_s: int = Field(
        default=120, ge=VOICEMAIL_MAX_S_RANGE[0], le=VOICEMAIL_MAX_S_RANGE[1]
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            _EmptyNotice(settings_cls),
            env_settings,
            dotenv_settings,
            file_secret_settings,
        )

    @field_validator("transcription_engine", "voicemail", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("transcription_language")
    @classmethod
    def _language_tag(cls, value: str) -> str:
        if LANGUAGE_TAG.fullmatch(value) is None:
            raise ValueError("must be a language tag like ja-JP")
        return value

    @field_validator("recording_notice")
    @classmethod
    def _one_notice(cls, value: str) -> str:
        return value.strip()

    @field_validator("voicemail_greeting", mode="before")
    @classmethod
    def _greeting(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _model_of_the_engine(self) -> GatewaySettings:
        model = self.transcription_model
        if model is None:
            return self
        engine = self.transcription_engine or TranscriptionEngine.GOOGLE  # Twilio's default
        if SPEECH_MODELS[engine].fullmatch(model) is None:
            raise ValueError(
                f"TRANSCRIPTION_MODEL is malformed (not a speech model of the {engine.value}"
                " engine: see TRANSCRIPTION_ENGINE)"
            )
        return self

    @field_validator("public_base_url", "kintone_base_url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query or fragment")
        return value.rstrip("/")

    @field_validator("twilio_caller_id", "sip_forward_to", "inbound_forward_to")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            number = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            raise ValueError("must be a phone number in E.164 form, e.g. +815012345678") from None
        if not phonenumbers.is_valid_number(number):
            raise ValueError("is not a valid phone number")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)

    @field_validator("dial_allowed_countries")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        regions = [v.upper() for v in value]
        supported = phonenumbers.SUPPORTED_REGIONS
        for region in regions:
            if region not in supported:
                raise ValueError(f"{region} is not an ISO 3166 region code")
        if not regions:
            raise ValueError("must name at least one region")
        return regions

    @field_validator("ring_identities", "sip_ring_identities")
    @classmethod
    def _identities(cls, value: list[str]) -> list[str]:
        for identity in value:
            if IDENTITY_PATTERN.fullmatch(identity) is None:
                raise ValueError("must be identities like kintone_5 (letters, digits, _)")
        unique = list(dict.fromkeys(value))
        if len(unique) > MAX_RING_IDENTITIES:
            raise ValueError(f"Twilio rings at most {MAX_RING_IDENTITIES} browsers at once")
        return unique

    @model_validator(mode="after")
    def _one_ring_group(self) -> GatewaySettings:
        if (
            self.ring_identities
            and self.sip_ring_identities
            and self.ring_identities != self.sip_ring_identities
        ):
            raise ValueError(
                "RING_IDENTITIES and SIP_RING_IDENTITIES (its old name) are both set and differ:"
                " keep RING_IDENTITIES only"
            )
        return self

    @field_validator("status_callback_overrides")
    @classmethod
    def _overrides(cls, value: str) -> str:
        value = value.lstrip("#")
        if value and not re.fullmatch(
            r"[a-z]{1,4}=[0-9a-z]{1,16}(&[a-z]{1,4}=[0-9a-z]{1,16})*", value
        ):
            raise ValueError("must look like rc=3&rp=all")
        return value

    @property
    def ring_group(self) -> tuple[str, ...]:
        """The identities inbound calls ring: RING_IDENTITIES, or its old name's."""
        return tuple(self.ring_identities or self.sip_ring_identities)

    @property
    def conversation(self) -> Conversation:
        """What the TwiML records, transcribes and tells the customer."""
        return Conversation(
            recording=self.recording_on,
            transcription=self.transcription_on,
            language=self.transcription_language,
            engine=self.transcription_engine.value if self.transcription_engine else None,
            model=self.transcription_model,
            notice=self.recording_notice,
        )

    def voicemail_answer(self) -> VoicemailAnswer | None:
        """The voicemail TwiML, prepared once; None with ``VOICEMAIL=off``."""
        if self.voicemail != Voicemail.ON:
            return None
        return VoicemailAnswer.prepare(
            greeting=self.voicemail_greeting,
            max_length_s=self.voicemail_max_s,
            public_base_url=self.public_base_url,
            fragment=self.status_callback_overrides,
            conversation=self.conversation,
        )

    @property
    def kintone_origin(self) -> str:
        parts = urlsplit(self.kintone_base_url)
        return f"{parts.scheme}://{parts.netloc}"

    def secret_values(self) -> list[str]:
        return [
            self.twilio_auth_token.get_secret_value(),
            self.twilio_api_secret.get_secret_value(),
            self.calltrail_token_key.get_secret_value(),
        ]
