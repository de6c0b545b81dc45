"""kintone write-back with the services as processes, and the `calltrail kintone` commands."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from services.common.events import CallEvent
from services.devtools.broker import LocalBroker, free_port
from services.devtools.call_flows import answered_call
from services.devtools.kintone_standin import (
    CALL_HISTORY_FIELDS,
    Field,
    KintoneDomain,
    KintoneStandin,
    add_customer_app,
)
from services.devtools.simulate import Simulator, plan_calls
from services.devtools.twilio_player import TwilioSigner
from services.devtools.twilio_rest_standin import TwilioStandin, seeded_account
from services.recorder.adapters.repository import make_engine
from tests.conversation_events import (
    CUSTOMER_SAYS,
    STAFF_SAYS,
    recording_event,
    recording_sid,
    transcript,
)
from tests.e2e.conftest import ServiceProcess, recorder_env, start_recorder, subtable_writeback_env
from tests.factories import ACCOUNT_SID, API_KEY, API_SECRET, APP_SID, CALLER_ID
from tests.inbound_calls import inbound_call
from tests.integration.recorder_support import publish, query

APP = 12  # simulate places its calls from app 12, records 1..400
AT = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)


def customers_domain() -> KintoneDomain:
    domain = KintoneDomain()
    add_customer_app(domain, APP, "token-customers", records=400)
    return domain


async def calltrail(*args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def status_when(env: dict[str, str], expected: str, *, tries: int) -> str:
    """`calltrail kintone status` until its output starts with ``expected`` (0.1 s apart)."""
    out = ""
    for _ in range(tries):
        _, out = await calltrail("kintone", "status", env=env)
        if out.startswith(expected):
            break
        await asyncio.sleep(0.1)
    return out


async def test_every_finished_call_lands_once_across_a_recorder_crash(
    gateway_process: tuple[ServiceProcess, str],
    kafka_broker: LocalBroker,
    topic: str,
    database_url: str,
    twilio: TwilioSigner,
    tmp_path: Path,
) -> None:
    _, gateway = gateway_process
    domain = customers_domain()
    async with KintoneStandin(domain) as kintone:
        domain.latency_s = 0.01
        env = recorder_env(
            kafka_broker.bootstrap, topic, database_url, free_port()
        ) | subtable_writeback_env(kintone.base_url)
        recorder = await asyncio.to_thread(start_recorder, env, tmp_path / "recorder-1.log")
        calls = plan_calls(40, seed=4)
        simulator = Simulator(
            gateway, twilio, account_sid=ACCOUNT_SID, app_sid=APP_SID, caller_id=CALLER_ID
        )
        playing = asyncio.create_task(simulator.run(calls, concurrency=4, progress=False))
        while domain.request_count(APP, method="PUT") < 3 and not playing.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        recorder.process.kill()  # mid-stream: some calls written to kintone, others not yet
        await asyncio.to_thread(recorder.stop)
        summary = await playing
        assert summary.failures == []
        # The jobs the killed recorder held stay leased for two minutes; let them run out now
        # (the test would otherwise fail whenever the kill lands while a job is leased).
        await execute(database_url, "UPDATE kintone_outbox SET leased_until = NULL")  # ran out
        recorder = await asyncio.to_thread(start_recorder, env, tmp_path / "recorder-2.log")
        try:
            expected = sorted(call.parent_sid for call in calls)
            written: list[str] = []
            for _ in range(300):
                written = sorted(
                    row["value"]["CallSid"]["value"]
                    for record in domain.records(APP)
                    for row in record["通話履歴"]["value"]
                )
                if len(written) >= len(expected):
                    break
                await asyncio.sleep(0.1)
            assert written == expected  # every call, exactly once
            for call in calls:
                record = domain.record(APP, int(call.record_id))
                sids = [row["value"]["CallSid"]["value"] for row in record["通話履歴"]["value"]]
                assert call.parent_sid in sids  # on the record it was placed from
        finally:
            await asyncio.to_thread(recorder.stop)

        code, out = await calltrail("kintone", "status", env=env)
        assert code == 0, out
        assert out.startswith("pending 0  parked 0  done 40"), out

        code, out = await calltrail("kintone", "check", "--app", str(APP), env=env)
        assert code == 0, out
        assert "all set" in out
        assert "token-customers" not in out


async def test_check_names_what_is_missing(tmp_path: Path, database_url: str) -> None:
    domain = KintoneDomain()
    broken = dict(CALL_HISTORY_FIELDS)
    del broken["通話料金"]
    broken["通話時間"] = Field("SINGLE_LINE_TEXT")
    domain.add_app(APP, {"通話履歴": Field("SUBTABLE", fields=broken)})
    domain.add_token("token-customers", APP, view=True, edit=True)
    async with KintoneStandin(domain) as kintone:
        env = recorder_env("127.0.0.1:1", "t", database_url, 1) | {
            "KINTONE_WRITEBACK": "subtable",
            "KINTONE_BASE_URL": kintone.base_url,
            "KINTONE_API_TOKEN": "token-customers",
        }
        code, out = await calltrail("kintone", "check", "--app", str(APP), env=env)
    assert code == 1
    assert "PROBLEM  通話料金: missing" in out
    assert "PROBLEM  通話時間: is a SINGLE_LINE_TEXT, should be NUMBER" in out
    assert "2 problem(s)" in out


async def test_check_names_the_conversation_fields_when_recording_and_transcribing(
    database_url: str,
) -> None:
    domain = KintoneDomain()
    columns = dict(CALL_HISTORY_FIELDS) | {"通話内容": Field("SINGLE_LINE_TEXT")}
    domain.add_app(APP, {"通話履歴": Field("SUBTABLE", fields=columns)})
    domain.add_token("token-customers", APP, view=True, edit=True)
    async with KintoneStandin(domain) as kintone:
        env = recorder_env("127.0.0.1:1", "t", database_url, 1) | {
            "KINTONE_WRITEBACK": "subtable",
            "KINTONE_BASE_URL": kintone.base_url,
            "KINTONE_API_TOKEN": "token-customers",
            "RECORDING": "dual",
            "TRANSCRIPTION": "on",
        }
        code, out = await calltrail("kintone", "check", "--app", str(APP), env=env)
    assert code == 1
    assert "PROBLEM  通話内容: is a SINGLE_LINE_TEXT, should be MULTI_LINE_TEXT" in out
    assert "PROBLEM  録音: missing: add a FILE field with code '録音'" in out
    assert "2 problem(s)" in out


async def test_status_and_retry_of_parked_jobs(database_url: str) -> None:
    await query(database_url, "SELECT 1")
    from services.recorder.adapters.repository import make_engine

    engine = make_engine(database_url)
    async with engine.begin() as conn:
        await conn.exec_driver_sql(
            "INSERT INTO kintone_outbox (call_sid, kintone_app_id, kintone_record_id, state,"
            " last_error) VALUES ('CA1', '12', '1', 'parked', '[404] [GAIA_RE01] gone'),"
            " ('CA2', '12', '2', 'parked', '[404] [GAIA_RE01] gone'),"
            " ('CA3', '12', '3', 'done', NULL)"
        )
    await engine.dispose()
    env = recorder_env("127.0.0.1:1", "t", database_url, 1)
    code, out = await calltrail("kintone", "status", env=env)
    assert code == 0
    assert out.splitlines()[0] == "pending 0  parked 2  done 1"
    assert "parked      2  [404] [GAIA_RE01] gone" in out
    code, out = await calltrail("kintone", "retry", "--call-sid", "CA1", env=env)
    assert "1 parked jobs queued again" in out
    code, out = await calltrail("kintone", "status", env=env)
    assert out.splitlines()[0].startswith("pending 1  parked 1  done 1")


async def test_inbound_calls_land_on_their_customers_through_the_recorder_process(
    kafka_broker: LocalBroker, topic: str, database_url: str, tmp_path: Path
) -> None:
    """Inbound calls as the gateway publishes them, through the broker and the recorder
    process, matched in the customer app by phone number or LINE user id, once each."""
    domain = customers_domain()
    line_id = "U" + "fedcba9876543210" * 2
    by_phone = domain.add_record(APP, {"電話番号": {"value": "090-1111-2222"}})
    also = domain.add_record(APP, {"電話番号": {"value": "+819011112222"}})
    by_line = domain.add_record(APP, {"LINEユーザーID": {"value": line_id}})
    matched = [inbound_call(caller="+819011112222", talk_s=20 + i) for i in range(5)]
    line = [inbound_call(line_user_id=line_id, answered_by="kintone_7")]
    unmatched = [inbound_call(caller="+819099990000"), inbound_call(caller="anonymous")]
    async with KintoneStandin(domain) as kintone:
        env = recorder_env(
            kafka_broker.bootstrap, topic, database_url, free_port()
        ) | subtable_writeback_env(kintone.base_url, KINTONE_CUSTOMER_APP=str(APP))
        recorder = await asyncio.to_thread(start_recorder, env, tmp_path / "recorder.log")
        try:
            await publish(
                kafka_broker.bootstrap,
                topic,
                [e for call in matched + line + unmatched for e in call.events],
            )
            expected = sorted(c.root for c in matched)
            wanted = {by_phone: len(expected), also: len(expected), by_line: 1}
            for _ in range(300):
                counts = {r: len(domain.record(APP, r)["通話履歴"]["value"]) for r in wanted}
                if counts == wanted:
                    break
                await asyncio.sleep(0.1)
            for record_id in (by_phone, also):
                rows = domain.record(APP, record_id)["通話履歴"]["value"]
                assert sorted(r["value"]["CallSid"]["value"] for r in rows) == expected
                assert {r["value"]["発着信"]["value"] for r in rows} == {"着信"}
            [row] = domain.record(APP, by_line)["通話履歴"]["value"]
            assert row["value"]["CallSid"]["value"] == line[0].root
            assert row["value"]["担当者"]["value"] == "kintone_7"
            code, out = "", ""
            for _ in range(100):
                code, out = await calltrail("kintone", "status", env=env)
                if "unmatched 2" in out:
                    break
                await asyncio.sleep(0.1)
        finally:
            await asyncio.to_thread(recorder.stop)
    assert code == 0, out
    lines = out.splitlines()
    at = lines.index("unmatched 2")
    assert sorted(line.strip() for line in lines[at + 1 : at + 3]) == sorted(
        c.root for c in unmatched
    )
    assert "token-customers" not in out
    # One lookup per call with a number or LINE id to go by.
    assert domain.request_count(APP, method="GET", path="/records.json") == 7
    [(directions,)] = await query(database_url, "SELECT array_agg(DISTINCT direction) FROM calls")
    assert directions == ["inbound"]


async def test_a_missed_calls_comment_survives_a_sigkill_between_post_and_commit(
    kafka_broker: LocalBroker, topic: str, database_url: str, tmp_path: Path
) -> None:
    """CONTRACT.md section 12: kintone stores the comment and the recorder is killed (SIGKILL)
    before it hears back, so the job's commit never happens; the next recorder reads the
    record's comments, finds the CallSid, and posts nothing more."""
    domain = customers_domain()
    domain.add_entity("sato")
    customer = domain.add_record(APP, {"電話番号": {"value": "090-1111-2222"}})
    missed = inbound_call(caller="+819011112222", outcome="hung-up")
    stranger = inbound_call(caller="+819099990000", outcome="missed")
    async with KintoneStandin(domain) as kintone:
        env = recorder_env(
            kafka_broker.bootstrap, topic, database_url, free_port()
        ) | subtable_writeback_env(
            kintone.base_url, KINTONE_CUSTOMER_APP=str(APP), MISSED_CALL_NOTIFY="sato"
        )
        # The comment is stored; its answer is held until the recorder is gone.
        domain.fail_next(500, after_apply=True, path="/record/comment.json", hold_s=5)
        recorder = await asyncio.to_thread(start_recorder, env, tmp_path / "recorder-1.log")
        try:
            await publish(kafka_broker.bootstrap, topic, missed.events + stranger.events)
            for _ in range(300):
                if domain.comments(APP, customer):
                    break
                await asyncio.sleep(0.05)
            assert len(domain.comments(APP, customer)) == 1
        finally:
            recorder.process.kill()
            await asyncio.to_thread(recorder.stop)
        [(state, told)] = await query(
            database_url,
            "SELECT state, notified_record_ids FROM kintone_outbox WHERE call_sid = $1",
            missed.root,
        )
        assert (state, told) == ("pending", [])  # a comment may be out there; none confirmed
        await execute(database_url, "UPDATE kintone_outbox SET leased_until = NULL")  # ran out
        recorder = await asyncio.to_thread(start_recorder, env, tmp_path / "recorder-2.log")
        try:
            out = await status_when(env, "pending 0  parked 0  done 2", tries=100)
        finally:
            await asyncio.to_thread(recorder.stop)
    [comment] = domain.comments(APP, customer)
    assert missed.root in comment["text"]
    assert comment["mentions"] == [{"code": "sato", "type": "USER"}]
    [row] = domain.record(APP, customer)["通話履歴"]["value"]
    assert row["value"]["通話結果"]["value"] == "不在着信"
    assert domain.request_count(APP, method="POST", path="/record/comment.json") == 1
    assert domain.request_count(APP, method="GET", path="/record/comments.json") == 1
    lines = out.splitlines()
    assert lines[0].startswith("pending 0  parked 0  done 2"), out
    at = lines.index("missed 1")
    assert lines[at + 1].strip() == stranger.root


async def execute(database_url: str, sql: str) -> None:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(sql)
    finally:
        await engine.dispose()


async def test_each_calls_conversation_lands_once_with_one_file_across_a_recorder_crash(
    kafka_broker: LocalBroker, topic: str, database_url: str, tmp_path: Path
) -> None:
    """CONTRACT.md section 11: calls with their transcripts and recordings, through the broker
    and the recorder process, which is killed (SIGKILL) while it uploads and writes; once it is
    back, each call's row holds its transcript and exactly one file, fetched from the Twilio
    stand-in with the API key, and the recordings are deleted from Twilio after the write."""
    domain = KintoneDomain()
    add_customer_app(domain, APP, "token-customers", records=20, conversation=True)
    account = seeded_account(ACCOUNT_SID, API_KEY, API_SECRET, CALLER_ID)
    calls = [answered_call(app_id=str(APP), record_id=str(i + 1), at=AT) for i in range(20)]
    events: list[CallEvent] = []
    for call in calls:
        root = call[0].call_sid
        recording = recording_event(root, at=AT)
        sid = recording.params["RecordingSid"]
        account.add_recording(sid, root, AT, price=None, media=b"ID3" + root.encode())
        said = [("inbound_track", STAFF_SAYS), ("outbound_track", CUSTOMER_SAYS)]
        events += [*call, *transcript(root, said, at=AT)]
    async with KintoneStandin(domain) as kintone, TwilioStandin(account) as twilio_rest:
        base = f"{twilio_rest.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/"
        events += [
            recording_event(c[0].call_sid, at=AT, url=base + recording_sid(c[0].call_sid))
            for c in calls
        ]
        domain.latency_s = 0.02
        env = (
            recorder_env(kafka_broker.bootstrap, topic, database_url, free_port())
            | subtable_writeback_env(kintone.base_url)
            | {
                "RECORDING": "dual",
                "TRANSCRIPTION": "on",
                "RECORDING_KEEP_ON_TWILIO": "false",
                "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                "TWILIO_API_KEY": API_KEY,
                "TWILIO_API_SECRET": API_SECRET,
                "TWILIO_API_BASE_URL": twilio_rest.base_url,
            }
        )
        recorder = await asyncio.to_thread(start_recorder, env, tmp_path / "recorder-1.log")
        await publish(kafka_broker.bootstrap, topic, events)
        for _ in range(600):
            if domain.request_count(method="POST", path="/file.json") >= 3:  # no app: uploads
                break
            await asyncio.sleep(0.01)
        recorder.process.kill()  # mid-round: files uploaded, rows written or not yet
        await asyncio.to_thread(recorder.stop)
        assert domain.request_count(method="POST", path="/file.json") >= 3
        await execute(database_url, "UPDATE kintone_outbox SET leased_until = NULL")  # ran out
        recorder = await asyncio.to_thread(start_recorder, env, tmp_path / "recorder-2.log")
        try:
            out = await status_when(env, "pending 0  parked 0  done 20", tries=600)
            assert out.startswith("pending 0  parked 0  done 20"), out
        finally:
            await asyncio.to_thread(recorder.stop)
    for i, call in enumerate(calls):
        [row] = domain.record(APP, i + 1)["通話履歴"]["value"]
        assert row["value"]["CallSid"]["value"] == call[0].call_sid
        assert row["value"]["通話内容"]["value"] == f"担当者: {STAFF_SAYS}\nお客様: {CUSTOMER_SAYS}"
        assert len(row["value"]["録音"]["value"]) == 1
    assert all(stored.deleted for stored in account.recordings.values())
    [(unattached, deleted)] = await query(
        database_url,
        "SELECT count(*) FILTER (WHERE kintone_file_key IS NULL),"
        " count(deleted_from_twilio_at) FROM recordings",
    )
    assert (unattached, deleted) == (0, 20)
    for log in ("recorder-1.log", "recorder-2.log"):
        text = (tmp_path / log).read_text()
        assert STAFF_SAYS not in text
        assert API_SECRET not in text
        assert twilio_rest.base_url + "/2010" not in text
