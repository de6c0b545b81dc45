"""The alerting rules in a real Prometheus (Debian's binary), scraping the gateway and the
recorder as processes, fired by real faults and resolved by removing them; and every query of
the operations dashboard run against the same Prometheus.

The rule file is loaded with its waits shortened (``for: 5m`` → ``for: 5s``, every range read
over 20s): promtool's tests (tests/unit/deploy/test_alert_rules.py) hold the real durations.
One Prometheus, one gateway, one recorder and one kintone stand-in serve every fault; calls
keep flowing through the gateway all along, as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp

from services.devtools.broker import LocalBroker, free_port
from services.devtools.call_flows import answered_call
from services.devtools.kintone_standin import KintoneDomain, KintoneStandin, add_customer_app
from services.devtools.prometheus import LocalPrometheus
from services.devtools.prometheus_rule import RULES
from services.devtools.simulate import Simulator, plan_calls
from services.devtools.twilio_player import TwilioSigner, new_sid, status_callback_form
from services.recorder.settings import DEFAULT_TARIFF
from tests.e2e.conftest import (
    ServiceProcess,
    recorder_env,
    start_gateway,
    start_recorder,
    subtable_writeback_env,
)
from tests.factories import ACCOUNT_SID, APP_SID, CALLER_ID, PUBLIC_BASE_URL
from tests.integration.recorder_support import publish

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "calltrail-operations.json"
APP = 12  # simulate places its calls from app 12, records 1..400
WINDOW = "20s"  # every range of the rule file, shortened
# Grafana's variables, as Grafana sets them for a data source scraped every second (its
# "scrape interval" setting) and a dashboard showing the last 5 minutes: $__interval is the
# range over the panel's width, at least the scrape interval; $__rate_interval is
# max($__interval + scrape interval, 4 × scrape interval).
GRAFANA_VARIABLES = {"$__rate_interval": "4s", "$__interval": "1s", "$__range": "5m"}
# Panels whose queries return nothing until an event this test does not cause: none today.
# (The 5xx ratio has its 5xx from the recorder's /readyz, 503 until the consumer has joined,
# which start_recorder polls; every counter the other panels read exists from the start.)
PANELS_NEEDING_OTHER_EVENTS: dict[str, str] = {}

Firing = dict[str, list[dict[str, Any]]]


def shortened(rules: str) -> str:
    """The rule file with minutes of waiting as seconds, and every range as WINDOW."""
    text, waits = re.subn(r"\bfor: (\d+)m\b", r"for: \1s", rules)
    text, ranges = re.subn(r"\[\d+[smh]\]", f"[{WINDOW}]", text)
    assert waits, "no `for: <minutes>m` to shorten: has the rule file changed its form?"
    assert ranges, "no range to shorten: has the rule file changed its form?"
    return text


def tariff_rating_ip_phones(path: Path) -> Path:
    """The default tariff plus a rate for 050 numbers, which simulate dials: only the fault's
    leg is unrated."""
    path.write_text(DEFAULT_TARIFF.read_text() + 'ip_phone = "10.8"\n')
    return path


def firing(alerts: Iterable[dict[str, Any]]) -> Firing:
    out: Firing = {}
    for alert in alerts:
        if alert["state"] == "firing":
            out.setdefault(alert["labels"]["alertname"], []).append(alert)
    return out


async def wait_for(
    prometheus: LocalPrometheus, what: str, done: Callable[[Firing], bool], timeout_s: float = 90
) -> Firing:
    now: Firing = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        now = firing(await asyncio.to_thread(prometheus.alerts))
        if done(now):
            return now
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what}: firing {sorted(now)} after {timeout_s}s")


async def wait_each_fires(
    prometheus: LocalPrometheus, names: set[str], timeout_s: float = 90
) -> dict[str, dict[str, Any]]:
    """Each alert as first seen firing (they need not fire at the same moment); nothing else
    may fire meanwhile."""
    seen: dict[str, dict[str, Any]] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline and set(seen) != names:
        for name, alerts in firing(await asyncio.to_thread(prometheus.alerts)).items():
            assert name in names, f"{name} fired: {alerts}"
            seen.setdefault(name, alerts[0])
        await asyncio.sleep(0.5)
    assert set(seen) == names, f"after {timeout_s}s, never fired: {sorted(names - set(seen))}"
    return seen


def bad_signature_callbacks(count: int) -> list[tuple[dict[str, str], str]]:
    """Status callbacks signed with another auth token (as after a token rotation missed)."""
    wrong = TwilioSigner("not-the-auth-token-0123456789ab", PUBLIC_BASE_URL)
    forms = [
        status_callback_form(
            account_sid=ACCOUNT_SID,
            call_sid=new_sid(),
            status="ringing",
            sequence=1,
            from_="client:u_1",
            to="+819012345678",
            direction="inbound",
        )
        for _ in range(count)
    ]
    return [wrong.request("/twilio/status", form) for form in forms]


@contextlib.asynccontextmanager
async def calls_flowing(simulator: Simulator) -> AsyncIterator[None]:
    """Calls placed through the gateway, two at a time, until the block ends."""

    async def keep_calling() -> None:
        for seed in range(10**6):
            await simulator.run(plan_calls(2, seed=seed), concurrency=2, progress=False)
            await asyncio.sleep(0.2)

    task = asyncio.create_task(keep_calling())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in board["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def as_grafana_sends(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable left in {expr}"
    return expr


async def send_odd_requests(
    http: aiohttp.ClientSession, gateway_url: str, twilio: TwilioSigner
) -> None:
    """Requests whose method, path or fields could end up in a label value (a status
    callback's CallStatus is one), signed as Twilio signs."""
    for method in ("PROPFIND", "GET", "PATCH"):
        async with http.request(method, f'{gateway_url}/no/such/path"{{}}%0A?x="') as response:
            assert response.status in (404, 405)
    form = {"CallSid": 'CA"}\n', "CallStatus": 'ringing"} 1\n# HELP', "AccountSid": ACCOUNT_SID}
    headers, body = twilio.request("/twilio/status", form)
    async with http.post(f"{gateway_url}/twilio/status", data=body, headers=headers) as response:
        assert response.status == 400


async def check_dashboard_queries(prometheus: LocalPrometheus) -> None:
    empty = []
    for title, expr in dashboard_queries():
        series = await asyncio.to_thread(prometheus.query, as_grafana_sends(expr))  # parses
        if not series and title not in PANELS_NEEDING_OTHER_EVENTS:
            empty.append(f"{title}: {expr}")
    assert not empty, "panels without series:\n" + "\n".join(empty)


async def test_real_faults_fire_their_alerts_and_removing_them_resolves_them(
    kafka_broker: LocalBroker,
    topic: str,
    database_url: str,
    twilio: TwilioSigner,
    tmp_path: Path,
) -> None:
    rules = tmp_path / "calltrail-rules.yaml"
    rules.write_text(shortened(RULES.read_text()))
    domain = KintoneDomain()
    add_customer_app(domain, APP, "token-customers", records=400)
    gateway, gateway_url = await asyncio.to_thread(
        start_gateway, kafka_broker.bootstrap, topic, tmp_path, publish_timeout_s=1.0
    )
    recorder: ServiceProcess | None = None
    async with KintoneStandin(domain) as kintone, aiohttp.ClientSession() as http:
        recorder_port = free_port()
        env = (
            recorder_env(kafka_broker.bootstrap, topic, database_url, recorder_port)
            | subtable_writeback_env(kintone.base_url)
            | {"CALLTRAIL_TARIFF": str(tariff_rating_ip_phones(tmp_path / "tariff.toml"))}
        )
        recorder = await asyncio.to_thread(start_recorder, env, tmp_path / "recorder-1.log")
        targets = {
            "calltrail-gateway": [gateway_url.removeprefix("http://")],
            "calltrail-recorder": [f"127.0.0.1:{recorder_port}"],
        }
        simulator = Simulator(
            gateway_url, twilio, account_sid=ACCOUNT_SID, app_sid=APP_SID, caller_id=CALLER_ID
        )
        prometheus = LocalPrometheus(tmp_path, targets, rules)
        await asyncio.to_thread(prometheus.start)
        try:
            async with calls_flowing(simulator):
                # Quiet: both targets up, calls recorded and written back, nothing firing.
                for _ in range(100):
                    written = await asyncio.to_thread(
                        prometheus.query,
                        'calltrail_kintone_writebacks_total{outcome="written"} > 0',
                    )
                    if written:
                        break
                    await asyncio.sleep(0.5)
                await asyncio.sleep(5)  # a few scrapes of the traffic for the rate() panels
                assert firing(await asyncio.to_thread(prometheus.alerts)) == {}

                await check_dashboard_queries(prometheus)

                # Whatever a client sends, /metrics stays text Prometheus accepts.
                await send_odd_requests(http, gateway_url, twilio)
                await asyncio.sleep(2)
                scraped = await asyncio.to_thread(prometheus.api, "targets")
                health = {
                    target["labels"]["job"]: (target["health"], target["lastError"])
                    for target in scraped["activeTargets"]
                }
                assert health == {job: ("up", "") for job in targets}

                # Four faults at once: bad signatures, an unprocessable event, an unrated leg,
                # kintone answering 500 to everything.
                for headers, body in bad_signature_callbacks(8):
                    async with http.post(
                        f"{gateway_url}/twilio/status", data=body, headers=headers
                    ) as response:
                        assert response.status == 403
                await publish(kafka_broker.bootstrap, topic, [b"{not an event"])
                await publish(kafka_broker.bootstrap, topic, answered_call(to="+12125550123"))
                domain.set_failure_rate(1.0, statuses=(500,))
                faults = {
                    "CalltrailTwilioSignatureRejected",
                    "CalltrailDeadLetters",
                    "CalltrailUnratedLegs",
                    "CalltrailKintoneWritebackFailing",
                }
                now = await wait_each_fires(prometheus, faults)
                signature = now["CalltrailTwilioSignatureRejected"]
                assert signature["labels"] == {
                    "alertname": "CalltrailTwilioSignatureRejected",
                    "job": "calltrail-gateway",
                    "severity": "ticket",
                }
                assert signature["annotations"]["runbook_url"].endswith(
                    "#calltrailtwiliosignaturerejected"
                )
                # The value that fired it (increase() extrapolates to the window's edges).
                found = re.match(
                    r"About (\d+) requests were refused", signature["annotations"]["description"]
                )
                assert found, signature["annotations"]
                assert 8 <= int(found[1]) <= 10
                kintone_alert = now["CalltrailKintoneWritebackFailing"]
                assert kintone_alert["labels"]["cause"] == "writes_failing"
                assert kintone_alert["labels"]["severity"] == "page"

                # kintone answers again; the other three clear once their window has passed.
                domain.set_failure_rate(0.0)
                await wait_for(prometheus, "faults removed", lambda f: not faults & set(f))

                # The broker freezes: the gateway spools (Twilio still gets 204), for 5 "minutes".
                kafka_broker.pause()
                try:
                    now = await wait_for(
                        prometheus, "broker frozen", lambda f: "CalltrailSpoolBacklog" in f
                    )
                    assert "CalltrailEventsRefused" not in now  # spooled, not refused
                    (spool,) = now["CalltrailSpoolBacklog"]
                    assert spool["labels"]["instance"] == targets["calltrail-gateway"][0]
                finally:
                    kafka_broker.resume()
                await wait_for(prometheus, "broker back", lambda f: not f)

                # The recorder stops: its target is down for 2 "minutes"; started again, up.
                await asyncio.to_thread(recorder.stop)
                now = await wait_for(
                    prometheus, "recorder stopped", lambda f: "CalltrailRecorderDown" in f
                )
                assert set(now) == {"CalltrailRecorderDown"}
                recorder = await asyncio.to_thread(start_recorder, env, tmp_path / "recorder-2.log")
                await wait_for(prometheus, "recorder back", lambda f: not f)
        except BaseException:
            print(prometheus.log.read_text()[-3000:])
            raise
        finally:
            await asyncio.to_thread(prometheus.stop)
            if recorder is not None:
                await asyncio.to_thread(recorder.stop)
            await asyncio.to_thread(gateway.stop)


def test_grafana_variables_are_all_replaced() -> None:
    for _, expr in dashboard_queries():
        as_grafana_sends(expr)


def test_shortening_keeps_every_alert() -> None:
    rules = RULES.read_text()
    assert shortened(rules).count("- alert:") == rules.count("- alert:")
