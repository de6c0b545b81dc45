"""``calltrail twilio status|provision`` against the Twilio REST stand-in, over real HTTP."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from services.devtools.twilio_rest_standin import TwilioAccount, TwilioStandin
from services.recorder.domain.provisioning import APP_NAME, LINE_ACL_NAME
from services.recorder.service_layer.provisioning import provision, twilio_status
from services.recorder.settings import TwilioAccountSettings
from tests.factories import API_SECRET, APP_SID, CALLER_ID, PUBLIC_BASE_URL
from tests.integration.twilio_support import (
    LINE_IPS,
    SIP_DOMAIN,
    Lines,
    cli_env,
    lines,
    rest_for,
    run_cli,
    serve_standin,
    settings_for,
)

WRITES = ("POST", "DELETE")
Json = dict[str, object]


@pytest.fixture
async def standin() -> AsyncIterator[TwilioStandin]:
    async for server in serve_standin():
        yield server


async def _status(settings: TwilioAccountSettings) -> tuple[int, Lines]:
    printed = lines()
    code = await twilio_status(
        settings, rest=rest_for(settings), out=printed.write_out, err=printed.write_err
    )
    return code, printed


async def _provision(settings: TwilioAccountSettings, dry_run: bool = False) -> tuple[int, Lines]:
    printed = lines()
    code = await provision(
        settings,
        dry_run=dry_run,
        rest=rest_for(settings),
        out=printed.write_out,
        err=printed.write_err,
    )
    return code, printed


def _writes(account: TwilioAccount) -> int:
    return sum(1 for r in account.requests if r.method in WRITES)


@dataclass(frozen=True)
class Ours:
    """The resources calltrail manages, as the stand-in holds them."""

    apps: list[Json]
    number: Json
    domains: list[Json]
    acls: list[Json]


def _ours(account: TwilioAccount) -> Ours:
    return Ours(
        apps=[a for a in account.applications.values() if a["friendly_name"] == APP_NAME],
        number=next(n for n in account.numbers.values() if n["phone_number"] == CALLER_ID),
        domains=[d for d in account.sip_domains.values() if d["domain_name"] == SIP_DOMAIN],
        acls=[a for a in account.acls.values() if a["friendly_name"] == LINE_ACL_NAME],
    )


def _assert_provisioned(account: TwilioAccount) -> None:
    ours = _ours(account)
    (app,) = ours.apps
    assert app["voice_url"] == f"{PUBLIC_BASE_URL}/twiml/voice"
    assert app["status_callback"] == f"{PUBLIC_BASE_URL}/twilio/status"
    assert ours.number["voice_url"] == f"{PUBLIC_BASE_URL}/twiml/incoming"
    assert ours.number["status_callback"] == f"{PUBLIC_BASE_URL}/twilio/status"
    (domain,) = ours.domains
    assert domain["voice_url"] == f"{PUBLIC_BASE_URL}/twiml/sip"
    assert domain["voice_status_callback_url"] == f"{PUBLIC_BASE_URL}/twilio/status"
    (acl,) = ours.acls
    held = sorted(str(a["ip_address"]) for a in account.acl_addresses[str(acl["sid"])].values())
    assert held == sorted(LINE_IPS)
    assert account.call_auth_mappings[str(domain["sid"])] == [acl["sid"]]


async def test_status_of_a_fresh_account_then_provision_twice(standin: TwilioStandin) -> None:
    settings = settings_for(standin)
    code, printed = await _status(settings)
    assert code == 1
    assert f"TwiML App {APP_NAME}: missing" in printed.out
    assert any(line.startswith(f"number {CALLER_ID}") and "differs" in line for line in printed.out)
    assert f"SIP domain {SIP_DOMAIN}: missing" in printed.out
    assert _writes(standin.account) == 0

    foreign = copy.deepcopy(
        (standin.account.sip_domains, standin.account.acls, standin.account.acl_addresses)
    )
    code, printed = await _provision(settings)
    assert code == 0, printed.text
    _assert_provisioned(standin.account)
    app_sid = _ours(standin.account).apps[0]["sid"]
    assert f"TWILIO_TWIML_APP_SID={app_sid}" in printed.text
    # Someone else's domain and list are untouched.
    for sid, domain in foreign[0].items():
        assert standin.account.sip_domains[sid] == domain
    for sid, acl in foreign[1].items():
        assert standin.account.acls[sid] == acl
        assert standin.account.acl_addresses[sid] == foreign[2][sid]

    writes = _writes(standin.account)
    code, printed = await _provision(settings)
    assert code == 0
    assert printed.out[0].startswith("nothing to change")
    assert _writes(standin.account) == writes  # the second run changes nothing

    code, printed = await _status(settings)
    assert code == 0, printed.text
    assert all(line.endswith(": ok") for line in printed.out[:5])


async def test_dry_run_prints_the_changes_and_makes_none(standin: TwilioStandin) -> None:
    settings = settings_for(standin)
    code, dry = await _provision(settings, dry_run=True)
    assert code == 0
    assert _writes(standin.account) == 0
    assert any(line.startswith(f"create SIP domain {SIP_DOMAIN}") for line in dry.out)
    code, real = await _provision(settings)
    assert code == 0
    # The same changes, in the same order (the app's new SID aside).
    made = [line for line in real.out if not line.startswith(("  ", "done"))]
    assert made == dry.out[1:]


async def test_drift_is_repaired_in_place(standin: TwilioStandin) -> None:
    settings = settings_for(standin)
    assert (await _provision(settings))[0] == 0
    account = standin.account
    ours = _ours(account)
    app = ours.apps[0]
    app["voice_url"] = "https://old.example.com/twiml/voice"
    domain = ours.domains[0]
    domain["voice_status_callback_url"] = None
    acl_sid = str(ours.acls[0]["sid"])
    addresses = account.acl_addresses[acl_sid]
    first = next(sid for sid, a in addresses.items() if a["ip_address"] == LINE_IPS[0])
    del addresses[first]
    account.add_address(acl_sid, "192.0.2.99")
    account.call_auth_mappings[str(domain["sid"])].clear()
    sids = (app["sid"], domain["sid"], acl_sid)

    code, printed = await _status(settings)
    assert code == 1
    assert any("differs" in line and "old.example.com" in line for line in printed.out)
    assert any("differs" in line and "192.0.2.99" in line for line in printed.out)

    code, printed = await _provision(settings)
    assert code == 0, printed.text
    assert any(line.startswith("remove address 192.0.2.99") for line in printed.out)
    _assert_provisioned(account)
    ours = _ours(account)
    # Updated in place: the same resources, nothing re-created.
    assert (ours.apps[0]["sid"], ours.domains[0]["sid"], ours.acls[0]["sid"]) == sids
    assert (await _status(settings))[0] == 0


async def test_a_run_cut_off_halfway_is_completed_by_the_next(standin: TwilioStandin) -> None:
    settings = settings_for(standin)
    # The list is created, but the answer never arrives: the connection drops.
    standin.account.fail_next(
        method="POST", path="SIP/IpAccessControlLists.json", drop=True, after_apply=True
    )
    code, printed = await _provision(settings)
    assert code == 1
    (line,) = printed.err
    assert f"create IP access control list {LINE_ACL_NAME}" in line
    assert "run the command again" in line
    code, printed = await _provision(settings)
    assert code == 0, printed.text
    _assert_provisioned(standin.account)  # exactly one list: found, not created twice
    assert (await _status(settings))[0] == 0


async def test_5xx_and_429_are_retried(standin: TwilioStandin) -> None:
    settings = settings_for(standin)
    standin.account.fail_next(503, method="GET", path="Applications.json")
    standin.account.fail_next(429, method="POST", path="IncomingPhoneNumbers/")
    code, printed = await _provision(settings)
    assert code == 0, printed.text
    assert standin.account.count("GET", "Applications.json") == 2
    _assert_provisioned(standin.account)


async def test_sip_domain_name_taken(standin: TwilioStandin) -> None:
    settings = settings_for(standin, twilio_sip_domain="taken.sip.twilio.com")
    code, printed = await _provision(settings)
    assert code == 1
    (line,) = printed.err
    assert "create SIP domain taken.sip.twilio.com" in line
    assert "is taken" in line
    assert "21232" in line
    # What came before it is made and stays; the rest is not attempted.
    assert _ours(standin.account).apps
    assert not _ours(standin.account).acls


async def test_already_mapped(standin: TwilioStandin) -> None:
    settings = settings_for(standin)
    standin.account.fail_next(
        400, method="POST", path="Auth/Calls/IpAccessControlListMappings.json", code=21231
    )
    code, printed = await _provision(settings)
    assert code == 1
    (line,) = printed.err
    assert "already mapped" in line
    assert "21231" in line
    assert (await _provision(settings))[0] == 0
    _assert_provisioned(standin.account)


async def test_wrong_secret_is_an_authentication_error(standin: TwilioStandin) -> None:
    settings = settings_for(standin, twilio_api_secret="not-the-secret-at-all")
    for run in (_status, _provision):
        code, printed = await run(settings)
        assert code == 2
        (line,) = printed.err
        assert "authentication failed" in line
        assert "20003" in line
        assert "not-the-secret-at-all" not in line
    assert _writes(standin.account) == 0


async def test_two_apps_named_calltrail_stop_provision(standin: TwilioStandin) -> None:
    standin.account.add_application(APP_NAME, voice_url="https://staging.example.com/twiml/voice")
    standin.account.add_application(APP_NAME, voice_url="https://other.example.com/twiml/voice")
    settings = settings_for(standin)
    code, printed = await _provision(settings)
    assert code == 1
    assert any("2 TwiML Apps are named calltrail" in line for line in printed.err)
    assert _writes(standin.account) == 0
    assert (await _status(settings))[0] == 1


async def test_a_foreign_list_with_our_name_twice_stops_provision(standin: TwilioStandin) -> None:
    standin.account.add_acl(LINE_ACL_NAME, "198.51.100.1")
    standin.account.add_acl(LINE_ACL_NAME, "198.51.100.2")
    code, printed = await _provision(settings_for(standin))
    assert code == 1
    assert any(f"lists are named {LINE_ACL_NAME}" in line for line in printed.err)
    assert _writes(standin.account) == 0


async def test_a_number_not_on_the_account_is_never_bought(standin: TwilioStandin) -> None:
    settings = settings_for(standin, twilio_caller_id="+815000000000")
    code, printed = await _provision(settings)
    assert code == 1
    assert any("not on this Twilio account" in line for line in printed.err)
    assert _writes(standin.account) == 0


async def test_an_unknown_app_sid_is_an_error(standin: TwilioStandin) -> None:
    settings = settings_for(standin, twilio_twiml_app_sid=APP_SID)
    code, printed = await _status(settings)
    assert code == 1
    assert any("Twilio does not know this SID" in line for line in printed.out)
    code, printed = await _provision(settings)
    assert code == 1
    assert any(APP_SID in line for line in printed.err)


async def test_a_number_routed_elsewhere_gets_a_warning(standin: TwilioStandin) -> None:
    number = next(n for n in standin.account.numbers.values() if n["phone_number"] == CALLER_ID)
    number["trunk_sid"] = "TK" + "a" * 32
    code, printed = await _provision(settings_for(standin))
    assert code == 0
    assert any(line.startswith("warning:") and "trunk_sid" in line for line in printed.out)


async def test_without_a_sip_domain_only_app_and_number(standin: TwilioStandin) -> None:
    settings = settings_for(standin, twilio_sip_domain=None, line_sip_ips=[])
    code, printed = await _provision(settings)
    assert code == 0, printed.text
    assert not any("SIP" in line for line in printed.out)
    assert standin.account.count("GET", "SIP/Domains.json") == 0


# --- the command, as a process ------------------------------------------------------------


async def test_cli_provision_then_status(standin: TwilioStandin) -> None:
    env = cli_env(standin)
    ran = await run_cli("twilio", "provision", env=env)
    assert ran.code == 0, ran.stderr
    assert API_SECRET not in ran.stdout + ran.stderr
    ran = await run_cli("twilio", "status", env=env)
    assert ran.code == 0, ran.stdout + ran.stderr
    ran = await run_cli("twilio", "provision", "--dry-run", env=env)
    assert ran.code == 0
    assert ran.stdout.startswith("nothing to change")


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("PUBLIC_BASE_URL", "http://calltrail.example.com", "PUBLIC_BASE_URL"),
        ("LINE_SIP_IPS", "203.0.113.10,2001:db8::1", "LINE_SIP_IPS"),
        ("LINE_SIP_IPS", "", "LINE_SIP_IPS"),
        ("TWILIO_ACCOUNT_SID", "AC123", "TWILIO_ACCOUNT_SID"),
    ],
)
async def test_cli_bad_settings_fail_before_any_request(
    standin: TwilioStandin, setting: str, value: str, named: str
) -> None:
    for action in ("status", "provision"):
        ran = await run_cli("twilio", action, env=cli_env(standin, **{setting: value}))
        assert ran.code == 2
        assert len(ran.stderr.strip().splitlines()) == 1
        assert named in ran.stderr
    assert standin.account.requests == []


async def test_cli_wrong_key(standin: TwilioStandin) -> None:
    ran = await run_cli("twilio", "status", env=cli_env(standin, TWILIO_API_SECRET="wrong-secret"))
    assert ran.code == 2
    assert "authentication failed" in ran.stderr
    assert "wrong-secret" not in ran.stdout + ran.stderr


async def test_a_dropped_lookup_is_retried(standin: TwilioStandin) -> None:
    standin.account.fail_next(method="GET", path="SIP/Domains.json", drop=True)
    code, printed = await _status(settings_for(standin))
    assert code == 1, printed.text  # a fresh account: missing, but answered
    assert standin.account.count("GET", "SIP/Domains.json") == 2
