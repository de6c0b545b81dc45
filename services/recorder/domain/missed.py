"""Missed calls (CONTRACT.md section 12): how an inbound call is told missed from answered by its
legs, and the kintone record comment that tells someone about it. Pure: no I/O.

A missed call is an inbound call none of whose browser (client) legs reached ``in-progress``,
whatever followed: the caller hung up while it rang, the forward went unanswered, or a
voicemail was left (``留守電``: its recording completed with something in it). A call the
forward phone answered is not missed here: someone at the company spoke with the customer, so
its row keeps ``completed`` and nobody is notified (there is nobody to call back). The legs
are mappings as ``calls`` rows (``leg``, ``status``, ``answered_at``, ``duration_s``…), so the
same rule reads what the store returns and what a test folds.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers

from services.recorder.domain.customer_lookup import PhoneCaller, identify_caller

MISSED = "不在着信"  # KINTONE_FIELD_RESULT's value for a missed call (section 12)
VOICEMAIL = "留守電"  # … when a voicemail was left (voicemail_left)
BROWSER = "browser"
COMPLETED = "completed"

# kintone's limits for one record comment (cybozu.dev, "レコードのコメントを投稿する",
# https://cybozu.dev/ja/kintone/docs/rest-api/records/add-comment/): comment.text at most
# 65,535 characters; at most 10 mentions (宛先) per comment.
MAX_COMMENT_CHARS = 65_535
MAX_MENTIONS = 10
VOICEMAIL_LINES = 3  # the first lines of a voicemail's transcript that go into the comment


class InboundOutcome(enum.StrEnum):
    ANSWERED = "answered"  # a browser took it
    FORWARDED = "forwarded"  # no browser; the forward phone did
    MISSED = "missed"  # nobody talked with the caller


def talked(leg: Mapping[str, Any]) -> bool:
    """The leg reached ``in-progress``: its answer was seen, or (the answered callback lost)
    it completed with talk time, which an unanswered leg never has."""
    return leg["answered_at"] is not None or (
        leg["status"] == COMPLETED and (leg["duration_s"] or 0) > 0
    )


def inbound_outcome(
    children: Iterable[Mapping[str, Any]],
) -> tuple[InboundOutcome, Mapping[str, Any] | None]:
    """How an inbound call ended, by its child legs (the browsers it rang, the forward), and
    the leg that answered: the first browser to talk, else the forward. Any order of the legs
    gives the same answer."""
    spoke = sorted(
        (leg for leg in children if talked(leg)),
        key=lambda leg: (leg["leg"] != BROWSER, leg["answered_at"] or leg["call_sid"]),
    )
    if not spoke:
        return InboundOutcome.MISSED, None
    first = spoke[0]
    if first["leg"] == BROWSER:
        return InboundOutcome.ANSWERED, first
    return InboundOutcome.FORWARDED, first


# --- the voicemail ----------------------------------------------------------------------------


_NEVER = datetime.min.replace(tzinfo=UTC)  # a session whose start is not known comes first


@dataclass(frozen=True, slots=True)
class VoicemailRecording:
    """A ``recordings`` row of source ``voicemail`` (the ``<Record>``), as far as it matters."""

    status: str
    duration_s: int | None
    started_at: datetime | None


@dataclass(frozen=True, slots=True)
class CallerSaid:
    """An utterance of the caller (speaker ``customer``) on a missed call."""

    transcription_sid: str
    session_started_at: datetime | None  # its transcription's start
    sequence_id: int
    spoken_at: datetime | None
    text: str


def voicemail_left(recordings: Iterable[VoicemailRecording]) -> bool:
    """A voicemail was left: its recording completed, with something in it. A silent caller's
    is ``absent`` (Twilio keeps no file), a failed one has nothing to hear: both stay a plain
    missed call."""
    return any(r.status == COMPLETED and (r.duration_s or 0) > 0 for r in recordings)


def voicemail_lines(
    said: Iterable[CallerSaid], recording_started_at: datetime | None
) -> tuple[str, ...]:
    """What the caller said into the voicemail, one utterance a line, in the order said: their
    utterances from the recording's start on (all of them when it is not known), of one
    transcription session, the last to start that heard any (the voicemail's own
    ``<Start><Transcription>`` runs beside the call's first one and repeats its words)."""
    heard = [
        u
        for u in said
        if u.text.strip()
        and (
            recording_started_at is None
            or u.spoken_at is None
            or u.spoken_at >= recording_started_at
        )
    ]
    if not heard:
        return ()
    latest = max(heard, key=lambda u: (u.session_started_at or _NEVER, u.transcription_sid))
    session = sorted(
        (u for u in heard if u.transcription_sid == latest.transcription_sid),
        key=lambda u: u.sequence_id,
    )
    return tuple(u.text.strip() for u in session)


# --- who is told ------------------------------------------------------------------------------


class EntityType(enum.StrEnum):
    """kintone's mention (宛先) types."""

    USER = "USER"
    GROUP = "GROUP"
    ORGANIZATION = "ORGANIZATION"


@dataclass(frozen=True, slots=True)
class Mention:
    code: str
    type: EntityType = EntityType.USER

    def as_kintone(self) -> dict[str, str]:
        return {"code": self.code, "type": self.type.value}

    def __str__(self) -> str:
        return f"{self.type.value}:{self.code}"


def parse_mentions(entries: Iterable[str]) -> tuple[Mention, ...]:
    """``MISSED_CALL_NOTIFY``'s entries: ``code`` (a user) or ``USER:code``, ``GROUP:code``,
    ``ORGANIZATION:code`` (the type in any case). A code may itself hold a colon (a guest's
    ``guest/…`` address does not, but nothing forbids it): only a known type before the first
    colon is read as one. Repeats are dropped; more than kintone's 10 is refused."""
    found: list[Mention] = []
    for raw in entries:
        entry = raw.strip()
        head, sep, rest = entry.partition(":")
        if sep and head.upper() in EntityType.__members__:
            mention = Mention(rest.strip(), EntityType(head.upper()))
        else:
            mention = Mention(entry)
        if not mention.code:
            raise ValueError(f"an entry names no code ({entry!r})")
        if mention not in found:
            found.append(mention)
    if len(found) > MAX_MENTIONS:
        raise ValueError(f"at most {MAX_MENTIONS} entries: kintone's limit for one comment")
    return tuple(found)


_MENTION_INDEX = re.compile(r"mentions\[(\d+)\]")


def refused_mentions(
    mentions: Sequence[Mention], errors: Mapping[str, Any], message: str
) -> list[Mention]:
    """The mentions kintone's refusal names: by index in its ``errors`` keys
    (``comment.mentions[2].code``), else by code in its messages. None named: all of them
    (the refusal came for a comment whose only variable part is its mentions)."""
    named = {int(m.group(1)) for key in errors for m in _MENTION_INDEX.finditer(str(key))}
    by_index = [mention for i, mention in enumerate(mentions) if i in named]
    if by_index:
        return by_index
    text = " ".join([message, *(str(value) for value in errors.values())])
    by_code = [mention for mention in mentions if mention.code in text]
    return by_code or list(mentions)


# --- what they read ---------------------------------------------------------------------------


def readable_number(caller: str | None, line_user_id: str | None, home_region: str = "JP") -> str:
    """The caller as people read it: ``090-1111-2222`` at home, ``+1 415-555-0100`` from
    abroad, ``LINE`` for a LINE call, ``非通知`` when withheld or unreadable (whatever
    ``identify_caller`` would not look up as a number)."""
    if line_user_id:
        return "LINE"
    phone = identify_caller(caller, None, home_region)
    if not isinstance(phone, PhoneCaller):
        return "非通知"
    parsed = phonenumbers.parse(phone.e164)
    at_home = phonenumbers.region_code_for_number(parsed) == home_region
    style = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if at_home
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(parsed, style)


WEEKDAYS = "月火水木金土日"


def comment_text(
    *,
    call_sid: str,
    caller: str,
    started_at: datetime | None,
    zone: ZoneInfo,
    voicemail: Sequence[str] | None = None,
) -> str:
    """The comment on the customer's record: who called and when (in ``zone``), the first
    lines of the voicemail when one was left, and the CallSid last (the retry looks for it,
    and it survives the cut to kintone's 65,535 characters)."""
    when = "不明"
    if started_at is not None:
        local = started_at.astimezone(zone)
        when = f"{local:%Y年%m月%d日}({WEEKDAYS[local.weekday()]}) {local:%H:%M}"
    lines = [f"{VOICEMAIL if voicemail is not None else MISSED}がありました。"]
    lines += [f"発信者: {caller}", f"日時: {when}"]
    if voicemail:
        lines.append(f"{VOICEMAIL}:")
        lines += [f"  {line}" for line in voicemail[:VOICEMAIL_LINES]]
    tail = f"CallSid: {call_sid}"
    body = "\n".join(lines)
    room = MAX_COMMENT_CHARS - len(tail) - 1  # the line break before it
    if len(body) > room:
        body = body[: room - 1] + "…"
    return f"{body}\n{tail}"


def mentions_call(comments: Iterable[Mapping[str, Any]], call_sid: str) -> bool:
    """Whether one of these comments (GET record/comments.json's) is this call's."""
    return any(call_sid in str(comment.get("text") or "") for comment in comments)
