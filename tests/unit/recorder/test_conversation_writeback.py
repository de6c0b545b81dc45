"""The settled write-back's pure parts (CONTRACT.md section 11, "On the record"): its settings,
the cells a call's conversation adds to its row, what ``kintone check`` asks of the app, which
recording URLs are ever fetched, and a late recording putting a written call's job back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from services.common.settings import SettingsError, load_settings
from services.devtools.call_flows import answered_call
from services.recorder.adapters.twilio_rest import TwilioRest
from services.recorder.domain import kintone_fields
from services.recorder.domain.batch import ReceivedEvent
from services.recorder.domain.conversation import RecordingFile
from services.recorder.domain.history import HistoryFields, conversation_cells, file_attached
from services.recorder.service_layer.recording import CallRecorder
from services.recorder.settings import KintoneSettings
from tests.conversation_events import WITH_CONVERSATION_RATES, recording_event
from tests.factories import ACCOUNT_SID, API_KEY, API_SECRET
from tests.unit.recorder.fakes import FakeLegStore

AT = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)
FIELDS = HistoryFields(
    *("通話日時", "通話番号", "通話結果", "通話時間", "通話料金", "担当者", "CallSid", "顧客番号"),
    transcript="通話内容",
    recording="録音",
)
BOTH = frozenset({"通話内容", "録音"})


def settings(**overrides: Any) -> KintoneSettings:
    return KintoneSettings(
        kintone_writeback="subtable",
        kintone_base_url="https://example.cybozu.com",
        kintone_api_token="t",
        **overrides,
    )


def test_the_defaults_and_the_fields_follow_recording_and_transcription() -> None:
    off = settings()
    assert (off.settle_timeout_s, off.transcript_max_chars) == (300.0, 20_000)
    assert off.recording_keep_on_twilio is True
    assert (off.history_fields().transcript, off.history_fields().recording) == (None, None)
    on = settings(recording="DUAL", transcription=" on ")
    assert (on.history_fields().transcript, on.history_fields().recording) == ("通話内容", "録音")
    only = settings(transcription="on", kintone_field_transcript="会話")
    assert (only.history_fields().transcript, only.history_fields().recording) == ("会話", None)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RECORDING", "mono"),
        ("TRANSCRIPTION", "yes"),
        ("SETTLE_TIMEOUT_S", "-1"),
        ("TRANSCRIPT_MAX_CHARS", "7"),
        ("RECORDING_KEEP_ON_TWILIO", "maybe"),
    ],
)
def test_a_bad_value_stops_the_recorder_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as stopped:
        load_settings(KintoneSettings, "recorder")
    assert f"{name} is malformed" in str(stopped.value)
    assert value not in str(stopped.value).replace(name, "")


def test_a_new_row_gets_the_transcript_and_the_files() -> None:
    cells = conversation_cells(FIELDS, BOTH, "担当者: はい", ["k1"])
    assert cells == {"通話内容": {"value": "担当者: はい"}, "録音": {"value": [{"fileKey": "k1"}]}}


def test_a_row_saying_the_same_is_not_rewritten_and_a_missing_field_is_left_out() -> None:
    current = {"通話内容": {"type": "MULTI_LINE_TEXT", "value": "担当者: はい"}}
    assert conversation_cells(FIELDS, BOTH, "担当者: はい", (), current) == {}
    longer = conversation_cells(FIELDS, BOTH, "担当者: はい\nお客様: どうも", (), current)
    assert longer == {"通話内容": {"value": "担当者: はい\nお客様: どうも"}}
    assert conversation_cells(FIELDS, frozenset({"録音"}), "担当者: はい", ()) == {}
    assert conversation_cells(FIELDS, frozenset(), None, ["k1"]) == {}
    off = HistoryFields("a", "b", "c", "d", "e", "f", "g", "h")
    assert conversation_cells(off, BOTH, "担当者: はい", ["k1"]) == {}


def test_a_row_holding_a_file_has_it_attached() -> None:
    assert file_attached(FIELDS, {"録音": {"value": [{"fileKey": "stored"}]}})
    assert not file_attached(FIELDS, {"録音": {"value": []}})
    assert not file_attached(FIELDS, {})


def test_a_recording_is_attached_only_while_nothing_says_it_is_done() -> None:
    assert RecordingFile("RE1", "CA1", "https://api.twilio.com/x").to_attach
    assert not RecordingFile("RE1", "CA1", "https://api.twilio.com/x", file_key="k").to_attach
    assert not RecordingFile("RE1", "CA1", "https://x", file_error="given up").to_attach
    assert not RecordingFile("RE1", "CA1", None).to_attach


def test_kintone_check_names_the_missing_conversation_fields_and_their_types() -> None:
    on = settings(recording="dual", transcription="on")
    properties = {
        "通話履歴": {"type": "SUBTABLE", "fields": {"通話内容": {"type": "SINGLE_LINE_TEXT"}}}
    }
    findings = {
        f.code: f
        for f in kintone_fields.check_fields(
            properties, on.kintone_writeback, "通話履歴", on.history_fields()
        )
    }
    assert not findings["通話内容"].ok
    assert "should be MULTI_LINE_TEXT" in findings["通話内容"].message
    assert not findings["録音"].ok
    assert "add a FILE field" in findings["録音"].message
    off = settings()
    codes = {
        f.code
        for f in kintone_fields.check_fields(
            properties, off.kintone_writeback, "通話履歴", off.history_fields()
        )
    }
    assert not codes & {"通話内容", "録音"}


OURS = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/RE{'a' * 32}"


@pytest.mark.parametrize(
    ("url", "fetched"),
    [
        (f"https://api.twilio.com{OURS}", True),
        (f"https://evil.example{OURS}", False),
        (f"http://api.twilio.com{OURS}", False),
        (f"https://api.twilio.com:8443{OURS}", False),
        (f"https://u:p@api.twilio.com{OURS}", False),
        (f"https://api.twilio.com{OURS}/x", False),
        (f"https://api.twilio.com{OURS}?x=1", False),
        (f"https://api.twilio.com{OURS.replace(ACCOUNT_SID, 'AC' + '1' * 32)}", False),
        (f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/CA{'a' * 32}", False),
        ("not a url", False),
    ],
)
def test_only_the_accounts_recordings_on_the_api_host_are_ever_fetched(
    url: str, fetched: bool
) -> None:
    twilio = TwilioRest(ACCOUNT_SID, API_KEY, API_SECRET)
    media = twilio.recording_media_url(url)
    assert (media is not None) is fetched
    if media is not None:
        assert media == url + ".mp3"


async def test_a_recording_after_the_write_puts_the_calls_job_back_only_when_on() -> None:
    call = answered_call(at=AT)
    root = call[0].call_sid
    late = [recording_event(root, at=AT)]
    for on in (True, False):
        store = FakeLegStore()
        recorder = CallRecorder(
            store,
            WITH_CONVERSATION_RATES,
            ZoneInfo("Asia/Tokyo"),
            writeback_delay_s=10,
            conversation_writeback=on,
        )
        await recorder.record_events([ReceivedEvent(e, e.encode().decode()) for e in call])
        assert store.requeued == {}
        await recorder.record_events([ReceivedEvent(e, e.encode().decode()) for e in late])
        assert store.requeued == ({root: 10} if on else {})


def test_settings_errors_are_validation_errors() -> None:
    with pytest.raises(ValidationError):
        settings(recording="both")
