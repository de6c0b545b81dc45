"""The pure planner: desired against observed, the states and the ordered changes."""

from __future__ import annotations

from dataclasses import replace

from services.recorder.domain.provisioning import (
    APP_NAME,
    LINE_ACL_NAME,
    Action,
    Application,
    Desired,
    IpAccessControlList,
    IpAddress,
    Observed,
    PhoneNumber,
    SipDomain,
    State,
    Target,
    plan,
)

BASE = "https://calltrail.example.com"
CALLER = "+815012345678"
DOMAIN = "acme.sip.twilio.com"
DESIRED = Desired(BASE, CALLER, sip_domain=DOMAIN, line_ips=("203.0.113.1", "203.0.113.2"))


def _app(sid: str = "AP1", voice_url: str = f"{BASE}/twiml/voice") -> Application:
    return Application(sid, APP_NAME, voice_url, "POST", f"{BASE}/twilio/status", "POST")


def _number(**changes: str | None) -> PhoneNumber:
    values: dict[str, str | None] = {
        "voice_url": f"{BASE}/twiml/incoming",
        "voice_method": "POST",
        "status_callback": f"{BASE}/twilio/status",
        "status_callback_method": "POST",
        "voice_application_sid": None,
        "trunk_sid": None,
    }
    values.update(changes)
    return PhoneNumber(
        "PN1",
        CALLER,
        values["voice_url"],
        values["voice_method"],
        values["status_callback"],
        values["status_callback_method"],
        values["voice_application_sid"],
        values["trunk_sid"],
    )


def _domain() -> SipDomain:
    return SipDomain("SD1", DOMAIN, f"{BASE}/twiml/sip", "POST", f"{BASE}/twilio/status", "POST")


def _all_ok() -> Observed:
    return Observed(
        apps=(_app(),),
        numbers=(_number(),),
        sip_domain=_domain(),
        acls=(IpAccessControlList("AL1", LINE_ACL_NAME),),
        acl_addresses=(IpAddress("IP1", "203.0.113.1", 32), IpAddress("IP2", "203.0.113.2", 32)),
        mapped_acl_sids=frozenset({"AL1"}),
    )


def test_everything_in_place_is_ok_with_no_changes() -> None:
    result = plan(DESIRED, _all_ok())
    assert result.all_ok
    assert result.changes == ()
    assert [s.target for s in result.statuses] == [
        Target.APP,
        Target.NUMBER,
        Target.SIP_DOMAIN,
        Target.ACL,
        Target.MAPPING,
    ]
    assert result.app_sid_hint == "AP1"


def test_a_fresh_account_creates_in_order() -> None:
    result = plan(DESIRED, Observed(numbers=(_number(voice_url=None),)))
    assert not result.all_ok
    steps = [(c.target, c.action) for c in result.changes]
    assert steps == [
        (Target.APP, Action.CREATE),
        (Target.NUMBER, Action.UPDATE),
        (Target.SIP_DOMAIN, Action.CREATE),
        (Target.ACL, Action.CREATE),
        (Target.ACL, Action.ADD_ADDRESS),
        (Target.ACL, Action.ADD_ADDRESS),
        (Target.MAPPING, Action.MAP),
    ]
    create_app = result.changes[0]
    assert dict(create_app.fields)["voice_url"] == f"{BASE}/twiml/voice"
    domain = dict(result.changes[2].fields)
    assert domain["voice_status_callback_url"] == f"{BASE}/twilio/status"
    # Created in this run: the executor fills the SIDs in.
    assert result.changes[4].sid is None
    assert result.changes[6].sid is None


def test_methods_compare_case_insensitively_and_urls_exactly() -> None:
    observed = _all_ok()
    app = Application("AP1", APP_NAME, f"{BASE}/twiml/voice/", "post", f"{BASE}/twilio/status", "")
    result = plan(DESIRED, replace(observed, apps=(app,)))
    (change,) = result.changes
    assert change.target is Target.APP
    assert change.action is Action.UPDATE
    assert change.sid == "AP1"
    assert dict(change.fields) == {
        "voice_url": f"{BASE}/twiml/voice",
        "status_callback_method": "POST",
    }
    (status,) = [s for s in result.statuses if s.target is Target.APP]
    assert status.state is State.DIFFERS
    assert "voice_url is" in status.line()


def test_the_list_holds_exactly_the_line_addresses() -> None:
    observed = replace(
        _all_ok(),
        acl_addresses=(
            IpAddress("IP1", "203.0.113.1", 32),
            IpAddress("IP3", "203.0.113.2", 24),
            IpAddress("IP4", "192.0.2.9", 32),
        ),
    )
    result = plan(DESIRED, observed)
    removed = {
        dict(c.fields)["address_sid"] for c in result.changes if c.action is Action.REMOVE_ADDRESS
    }
    added = [dict(c.fields)["ip_address"] for c in result.changes if c.action is Action.ADD_ADDRESS]
    assert removed == {"IP3", "IP4"}
    assert added == ["203.0.113.2"]
    assert all(c.sid == "AL1" for c in result.changes)
    # Removing comes first, the list itself is never deleted.
    assert result.changes[0].action is Action.REMOVE_ADDRESS


def test_an_unmapped_list_is_mapped() -> None:
    observed = replace(_all_ok(), mapped_acl_sids=frozenset({"ALother"}))
    (change,) = plan(DESIRED, observed).changes
    assert change.action is Action.MAP
    assert change.sid == "SD1"
    assert dict(change.fields) == {"ip_access_control_list_sid": "AL1"}


def test_problems_provision_cannot_fix_block_it() -> None:
    two_apps = replace(_all_ok(), apps=(_app("AP1"), _app("AP2")))
    assert "AP1, AP2" in plan(DESIRED, two_apps).blockers[0]
    no_number = replace(_all_ok(), numbers=())
    result = plan(DESIRED, no_number)
    assert "never buys" in result.blockers[0]
    assert [s.state for s in result.statuses if s.target is Target.NUMBER] == [State.MISSING]
    unknown_sid = Desired(BASE, CALLER, app_sid="AP" + "0" * 32)
    result = plan(unknown_sid, Observed(numbers=(_number(),)))
    assert "does not know" in result.blockers[0]
    two_lists = replace(
        _all_ok(),
        acls=(
            IpAccessControlList("AL1", LINE_ACL_NAME),
            IpAccessControlList("AL2", LINE_ACL_NAME),
        ),
    )
    assert "AL1, AL2" in plan(DESIRED, two_lists).blockers[0]


def test_a_number_routed_elsewhere_is_warned_about() -> None:
    observed = replace(_all_ok(), numbers=(_number(voice_application_sid="AP9"),))
    result = plan(DESIRED, observed)
    assert result.all_ok
    assert "voice_application_sid AP9" in result.warnings[0]


def test_without_a_sip_domain_only_the_app_and_the_number() -> None:
    result = plan(Desired(BASE, CALLER), Observed(apps=(_app(),), numbers=(_number(),)))
    assert [s.target for s in result.statuses] == [Target.APP, Target.NUMBER]
    assert result.all_ok
