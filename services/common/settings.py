"""Settings from the environment (CONTRACT.md section 7), shared loading rules.

Each service declares its own settings class on top of :class:`KafkaSettings`; both load
through :func:`load_settings`, which turns any problem into one line that names the setting
(and never its value: several of them are secrets).
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


#: A list given in the environment as ``A,B,C`` (not JSON, which nobody types into a ConfigMap).
CsvList = Annotated[list[str], NoDecode, BeforeValidator(_split_csv)]


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        case_sensitive=False,
        extra="ignore",
        env_ignore_empty=True,
        hide_input_in_errors=True,
        frozen=True,
    )

    log_level: str = "INFO"


class KafkaSettings(ServiceSettings):
    kafka_bootstrap: str
    # Apache Kafka (Strimzi) supports the idempotent producer; the local Tansu broker refuses it.
    kafka_idempotence: bool = True
    kafka_topic: str = "calltrail.call-events"

    @property
    def kafka_dlq_topic(self) -> str:
        return f"{self.kafka_topic}.dlq"


class Recording(enum.StrEnum):
    """``RECORDING`` (CONTRACT.md section 11)."""

    OFF = "off"
    DUAL = "dual"  # both sides of every <Dial>, one channel each (record-from-answer-dual)


class Transcription(enum.StrEnum):
    """``TRANSCRIPTION`` (CONTRACT.md section 11)."""

    OFF = "off"
    ON = "on"


class ConversationSettings(ServiceSettings):
    """Whether calls are recorded and transcribed: the gateway asks Twilio to, and the recorder
    waits for what Twilio sends back before it writes a call onto kintone."""

    recording: Recording = Recording.OFF
    transcription: Transcription = Transcription.OFF

    @field_validator("recording", "transcription", mode="before")
    @classmethod
    def _lower_case_choice(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    # ``==``, not ``is``: settings copied with ``model_copy(update=…)`` (as the tests do) are not
    # validated, and may hold the choice as its plain string.
    @property
    def recording_on(self) -> bool:
        return self.recording == Recording.DUAL

    @property
    def transcription_on(self) -> bool:
        return self.transcription == Transcription.ON


class SettingsError(SystemExit):
    """Raised at start-up; its message is the one line an operator needs."""


S = TypeVar("S", bound=ServiceSettings)


def load_settings(cls: type[S], service: str, **overrides: Any) -> S:
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise SettingsError(f"calltrail {service}: {describe_errors(exc)}") from None


def describe_errors(exc: ValidationError) -> str:
    """One line naming every bad setting. Values are never included."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        name = "_".join(str(part) for part in error["loc"] if isinstance(part, str)).upper()
        if error["type"] == "missing":
            problems.append(f"{name} is required but not set")
        else:
            # A validator's message may quote a value with a line break in it: keep one line.
            message = " ".join(str(error["msg"]).split())
            if name:
                problems.append(f"{name} is malformed ({message})")
            else:  # a rule across settings, whose message names them itself
                problems.append(message.removeprefix("Value error, "))
    return "; ".join(problems)
