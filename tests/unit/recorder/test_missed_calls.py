"""Missed calls (CONTRACT.md section 12), pure: told from answered ones by the legs themselves,
whatever order and repetition the callbacks came in; who is told; what the comment says."""

from __future__ import annotations

import random
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.settings import SettingsError, load_settings
from services.recorder.domain.history import summarise
from services.recorder.domain.legs import CallLeg
from services.recorder.domain.missed import (
    MAX_COMMENT_CHARS,
    MISSED,
    VOICEMAIL,
    CallerSaid,
    EntityType,
    InboundOutcome,
    Mention,
    VoicemailRecording,
    comment_text,
    inbound_outcome,
    mentions_call,
    parse_mentions,
    readable_number,
    refused_mentions,
    voicemail_left,
    voicemail_lines,
)
from services.recorder.settings import KintoneSettings
from tests.inbound_calls import inbound_call
from tests.unit.recorder.support import T0, fold

LINE_ID = "U" + "0123456789abcdef" * 2
TOKYO = ZoneInfo("Asia/Tokyo")
FORWARD = "+81312345678"


def rows(legs: dict[str, CallLeg]) -> list[dict[str, Any]]:
    """The legs as ``calls`` rows (what the write-back worker reads), unpriced."""
    out = []
    for leg in legs.values():
        row = {k: v.value if isinstance(v, Enum) else v for k, v in asdict(leg).items()}
        out.append(row | {"charge": None})
    return out


def orders(events: list[Any], seed: int) -> list[list[Any]]:
    """The events as Twilio sent them, reversed, shuffled, and every one repeated."""
    rng = random.Random(seed)
    shuffled = list(events)
    rng.shuffle(shuffled)
    repeated = events + rng.sample(events, len(events))
    return [events, events[::-1], shuffled, repeated]


@pytest.mark.parametrize("line", [False, True], ids=["number", "line"])
@pytest.mark.parametrize(
    ("outcome", "result", "missed", "seconds"),
    [
        ("answered", "completed", False, 61),
        ("forwarded", "completed", False, 61),  # the forward phone took it: someone spoke
        ("forward-unanswered", MISSED, True, 0),
        ("missed", MISSED, True, 0),  # nobody answered, nowhere to forward
        ("hung-up", MISSED, True, 0),  # the caller gave up while it rang
    ],
)
def test_missed_is_told_by_the_legs_in_any_order(
    outcome: str, result: str, missed: bool, seconds: int, line: bool
) -> None:
    call = inbound_call(
        caller="+819011112222",
        outcome=outcome,
        forward_to=FORWARD,
        line_user_id=LINE_ID if line else None,
        at=T0,
    )
    for seed, events in enumerate(orders(call.events, seed=len(outcome))):
        summary = summarise(call.root, rows(fold(events)))
        assert (summary.result, summary.missed, summary.seconds) == (result, missed, seconds), seed
        assert summary.user == ("kintone_5" if outcome == "answered" else None)
        assert summary.number == ("LINE" if line else "+819011112222")


CALLS = {
    outcome: inbound_call(caller="+819011112222", outcome=outcome, forward_to=FORWARD, at=T0)
    for outcome in ("answered", "forwarded", "forward-unanswered", "missed", "hung-up")
}


@given(st.sampled_from(sorted(CALLS)), st.data())
def test_any_permutation_with_any_repeats_tells_the_same(outcome: str, data: st.DataObject) -> None:
    call = CALLS[outcome]
    repeats = data.draw(st.lists(st.sampled_from(call.events), max_size=len(call.events)))
    events = data.draw(st.permutations(call.events + repeats))
    summary = summarise(call.root, rows(fold(events)))
    assert summary.missed is (outcome not in ("answered", "forwarded"))


def test_an_outbound_call_is_never_missed() -> None:
    call = inbound_call(outcome="missed", at=T0)
    legs = rows(fold(call.events))
    for leg in legs:
        leg["direction"] = "outbound"
    assert not summarise(call.root, legs).missed


def test_a_browser_that_talked_counts_even_when_its_answered_callback_was_lost() -> None:
    call = inbound_call(outcome="answered", talk_s=30, at=T0)
    answered = call.legs["kintone_5"]
    events = [e for e in call.events if not (e.call_sid == answered and e.status == "in-progress")]
    children = [leg for leg in rows(fold(events)) if leg["parent_call_sid"] == call.root]
    outcome, leg = inbound_outcome(children)
    assert outcome is InboundOutcome.ANSWERED
    assert leg is not None
    assert leg["call_sid"] == answered


def test_a_browser_answer_wins_over_the_forward_whatever_the_order() -> None:
    browser = {"call_sid": "CAb", "leg": "browser", "status": "completed", "duration_s": 5}
    forward = {"call_sid": "CAa", "leg": "pstn", "status": "completed", "duration_s": 9}
    at = {"answered_at": T0}
    for children in ([browser | at, forward | at], [forward | at, browser | at]):
        outcome, leg = inbound_outcome(children)
        assert (outcome, leg and leg["call_sid"]) == (InboundOutcome.ANSWERED, "CAb")


# --- who is told --------------------------------------------------------------------------------


def test_mentions_by_code_or_typed() -> None:
    assert parse_mentions(["sato", "USER:suzuki", "group:営業部", " ORGANIZATION: 本社 "]) == (
        Mention("sato"),
        Mention("suzuki"),
        Mention("営業部", EntityType.GROUP),
        Mention("本社", EntityType.ORGANIZATION),
    )
    # A colon after something that is no type is part of a user's code; repeats go.
    assert parse_mentions(["a:b", "sato", "USER:sato"]) == (Mention("a:b"), Mention("sato"))


@pytest.mark.parametrize(
    "entries", [["GROUP:"], [""], [f"user{i}" for i in range(11)]], ids=["no-code", "empty", "11"]
)
def test_bad_mentions_are_refused(entries: list[str]) -> None:
    with pytest.raises(ValueError, match=r"no code|at most 10"):
        parse_mentions(entries)


BASE = {
    "kintone_writeback": "subtable",
    "kintone_base_url": "https://example.cybozu.com",
    "kintone_api_token": "t",
    "kintone_customer_app": 3,
}


def test_the_setting_is_read_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISSED_CALL_NOTIFY", "sato,GROUP:営業部")
    settings = load_settings(KintoneSettings, "recorder", **BASE)
    assert settings.missed_call_mentions() == (Mention("sato"), Mention("営業部", EntityType.GROUP))
    monkeypatch.delenv("MISSED_CALL_NOTIFY")
    assert load_settings(KintoneSettings, "recorder", **BASE).missed_call_mentions() == ()


@pytest.mark.parametrize(
    ("value", "overrides"),
    [
        (",".join(f"u{i}" for i in range(11)), {}),
        ("GROUP:", {}),
        ("sato", {"kintone_customer_app": None}),
        ("sato", {"kintone_writeback": "off"}),
    ],
)
def test_a_bad_setting_stops_the_service_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str, overrides: dict[str, object]
) -> None:
    monkeypatch.setenv("MISSED_CALL_NOTIFY", value)
    with pytest.raises(SettingsError, match="MISSED_CALL_NOTIFY"):
        load_settings(KintoneSettings, "recorder", **(BASE | overrides))


def test_refused_mentions_by_index_by_code_else_all() -> None:
    mentions = [Mention("sato"), Mention("ghost"), Mention("営業部", EntityType.GROUP)]
    by_index = {"comment.mentions[1].code": {"messages": ["not found"]}}
    assert refused_mentions(mentions, by_index, "") == [Mention("ghost")]
    assert refused_mentions(mentions, {}, "The user (code: ghost) is not found") == [
        Mention("ghost")
    ]
    assert refused_mentions(mentions, {}, "Missing or invalid input.") == mentions


# --- what they read -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "line", "shown"),
    [
        ("+819011112222", None, "090-1111-2222"),
        ("+81312345678", None, "03-1234-5678"),
        ("+815012345678", None, "050-1234-5678"),
        ("+14155550100", None, "+1 415-555-0100"),
        ("sip:line-call@line-sip.example.jp", LINE_ID, "LINE"),
        ("anonymous", None, "非通知"),
        ("+266696687", None, "非通知"),  # Twilio's keypad spelling of ANONYMOUS
        (None, None, "非通知"),
    ],
)
def test_the_caller_as_people_read_it(caller: str | None, line: str | None, shown: str) -> None:
    assert readable_number(caller, line) == shown


def test_the_comment_says_who_when_in_the_billing_zone_and_the_call_sid() -> None:
    at = datetime(2026, 11, 10, 3, 0, 5, tzinfo=UTC)  # 12:00 on a Tuesday in Tokyo
    text = comment_text(call_sid="CA" + "1" * 32, caller="090-1111-2222", started_at=at, zone=TOKYO)
    assert text.splitlines() == [
        "不在着信がありました。",
        "発信者: 090-1111-2222",
        "日時: 2026年11月10日(火) 12:00",
        "CallSid: CA" + "1" * 32,
    ]
    assert mentions_call([{"text": "sato \n" + text}], "CA" + "1" * 32)
    assert not mentions_call([{"text": text}], "CA" + "2" * 32)


def test_a_voicemail_shows_its_first_lines_and_the_comment_fits_kintone() -> None:
    sid = "CA" + "3" * 32
    text = comment_text(
        call_sid=sid,
        caller="LINE",
        started_at=None,
        zone=TOKYO,
        voicemail=["お世話になっております。", "見積の件で", "折り返しを", "四行目"],
    )
    assert text.splitlines()[0] == "留守電がありました。"
    assert "  折り返しを" in text
    assert "四行目" not in text
    huge = comment_text(
        call_sid=sid, caller="LINE", started_at=None, zone=TOKYO, voicemail=["あ" * 70_000]
    )
    assert len(huge) == MAX_COMMENT_CHARS
    assert huge.endswith(f"…\nCallSid: {sid}")


# --- the voicemail ------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["forward-unanswered", "missed"])
def test_a_missed_call_with_a_voicemail_is_rusuden_with_its_lines(outcome: str) -> None:
    call = inbound_call(caller="+819011112222", outcome=outcome, forward_to=FORWARD, at=T0)
    legs = rows(fold(call.events))
    summary = summarise(call.root, legs, voicemail=["見積の件で", "折り返しください"])
    assert (summary.result, summary.missed, summary.seconds) == (VOICEMAIL, True, 0)
    assert summary.voicemail == ("見積の件で", "折り返しください")
    assert summarise(call.root, legs, voicemail=[]).result == VOICEMAIL  # nothing transcribed
    plain = summarise(call.root, legs)
    assert (plain.result, plain.voicemail) == (MISSED, None)


@pytest.mark.parametrize("outcome", ["answered", "forwarded"])
def test_an_answered_call_is_never_rusuden(outcome: str) -> None:
    call = inbound_call(outcome=outcome, forward_to=FORWARD, at=T0)
    summary = summarise(call.root, rows(fold(call.events)), voicemail=["?"])
    assert (summary.result, summary.voicemail) == ("completed", None)


def _recording(status: str, duration_s: int | None) -> VoicemailRecording:
    return VoicemailRecording(status, duration_s, T0)


def test_a_voicemail_is_left_only_by_a_completed_recording_with_something_in_it() -> None:
    assert voicemail_left([_recording("completed", 12)])
    assert voicemail_left([_recording("absent", None), _recording("completed", 3)])
    assert not voicemail_left([_recording("absent", None)])  # a silent caller
    assert not voicemail_left([_recording("failed", None)])
    assert not voicemail_left([_recording("completed", 0)])
    assert not voicemail_left([_recording("in-progress", None)])
    assert not voicemail_left([])


def _said(sid: str, session: int, seq: int, at_s: int, text: str) -> CallerSaid:
    return CallerSaid(sid, T0 + timedelta(seconds=session), seq, T0 + timedelta(seconds=at_s), text)


def test_the_voicemail_s_lines_are_one_session_s_from_the_beep_on_in_order() -> None:
    beep = T0 + timedelta(seconds=30)
    said = [
        _said("GT1", 0, 2, 5, "もしもし"),  # while it rang: before the recording
        _said("GT1", 0, 5, 34, "折り返しください"),  # the call's first session hears it too
        _said("GT1", 0, 4, 32, "見積の件で"),
        _said("GT2", 28, 3, 34, "折り返しください"),  # the voicemail's own session
        _said("GT2", 28, 2, 32, "見積の件で"),
        _said("GT2", 28, 4, 36, "  "),
    ]
    assert voicemail_lines(said, beep) == ("見積の件で", "折り返しください")
    assert voicemail_lines(said[:3], beep) == ("見積の件で", "折り返しください")
    assert voicemail_lines(said[:3], None) == ("もしもし", "見積の件で", "折り返しください")
    assert voicemail_lines([], beep) == ()
