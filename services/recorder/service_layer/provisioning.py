"""``calltrail twilio status`` and ``calltrail twilio provision [--dry-run]`` (CONTRACT.md §10).

Both look everything up first (applications and numbers filtered by Twilio, SIP domains and
IP access control lists listed and matched here), then compare in the pure domain. ``provision``
prints each change before making it and stops at the first Twilio error with one line naming
the resource and Twilio's code; what it already changed stays, and the next run, which looks
everything up again, completes the rest.

Exit codes: 0 all ok (status) or done (provision); 1 something differs or is missing (status),
or a Twilio error or a problem provision cannot fix (provision); 2 a configuration or
authentication error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from services.recorder.adapters.twilio_rest import TwilioError, TwilioRest
from services.recorder.domain.provisioning import (
    APP_NAME,
    LINE_ACL_NAME,
    Action,
    Application,
    Change,
    Desired,
    Observed,
    Plan,
    Target,
    plan,
)
from services.recorder.settings import TwilioAccountSettings

Write = Callable[[str], None]
OK, PROBLEM, CONFIG = 0, 1, 2


def _stdout(line: str) -> None:
    print(line, flush=True)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def desired_from(settings: TwilioAccountSettings) -> Desired:
    return Desired(
        public_base_url=settings.public_base_url,
        caller_id=settings.twilio_caller_id,
        app_sid=settings.twilio_twiml_app_sid,
        sip_domain=settings.twilio_sip_domain,
        line_ips=tuple(settings.line_sip_ips),
    )


async def observe(rest: TwilioRest, desired: Desired) -> Observed:
    """Everything Twilio has that calltrail needs, looked up before anything is changed."""
    apps: tuple[Application, ...]
    if desired.app_sid is not None:
        app = await rest.application(desired.app_sid)
        apps = (app,) if app is not None else ()
    else:
        apps = tuple(await rest.applications_named(APP_NAME))
    numbers = tuple(await rest.numbers(desired.caller_id))
    if desired.sip_domain is None:
        return Observed(apps=apps, numbers=numbers)
    domain = next(
        (d for d in await rest.sip_domains() if d.domain_name.lower() == desired.sip_domain),
        None,
    )
    acls = tuple(
        a for a in await rest.ip_access_control_lists() if a.friendly_name == LINE_ACL_NAME
    )
    addresses = tuple(await rest.ip_addresses(acls[0].sid)) if len(acls) == 1 else ()
    mapped = await rest.call_auth_acl_sids(domain.sid) if domain is not None else frozenset()
    return Observed(apps, numbers, domain, acls, addresses, mapped)


def explain(error: TwilioError, desired: Desired | None = None) -> str:
    """A Twilio error in words, with its code."""
    code = f"Twilio error {error.code}" if error.code else f"HTTP {error.status}"
    if error.auth_failed:
        return (
            f"authentication failed ({code}): Twilio refused TWILIO_API_KEY and "
            "TWILIO_API_SECRET for TWILIO_ACCOUNT_SID; check the three settings"
        )
    if error.code == 21232:
        name = desired.sip_domain if desired is not None else "TWILIO_SIP_DOMAIN"
        return (
            f"SIP domain name {name} is taken ({code}): names are global across "
            "Twilio; choose another TWILIO_SIP_DOMAIN"
        )
    if error.code == 21231:
        return f"the list is already mapped to this SIP domain ({code})"
    if error.status is None:
        return f"{error.message}; run the command again to complete"
    return f"{error.message} ({code})"


async def _planned(rest: TwilioRest, desired: Desired, command: str, err: Write) -> Plan | int:
    """What to change, from everything looked up first; or the exit code if Twilio refused."""
    try:
        observed = await observe(rest, desired)
    except TwilioError as exc:
        err(f"calltrail {command}: looking up Twilio's resources: {explain(exc, desired)}")
        return CONFIG if exc.auth_failed else PROBLEM
    return plan(desired, observed)


def _hint(result: Plan, settings: TwilioAccountSettings, out: Write) -> None:
    if result.app_sid_hint and settings.twilio_twiml_app_sid is None:
        out(
            f"TwiML App {APP_NAME} is {result.app_sid_hint}: set "
            f"TWILIO_TWIML_APP_SID={result.app_sid_hint} (the gateway's Access Tokens need it)"
        )


async def twilio_status(
    settings: TwilioAccountSettings,
    *,
    rest: TwilioRest | None = None,
    out: Write = _stdout,
    err: Write = _stderr,
) -> int:
    """One line per resource: ok, differs (with what) or missing."""
    rest = rest or TwilioRest.from_settings(settings)
    desired = desired_from(settings)
    result = await _planned(rest, desired, "twilio status", err)
    if isinstance(result, int):
        return result
    for status in result.statuses:
        out(status.line())
    for warning in result.warnings:
        out(f"warning: {warning}")
    for blocker in result.blockers:
        out(f"problem: {blocker}")
    _hint(result, settings, out)
    return OK if result.all_ok else PROBLEM


async def _apply(rest: TwilioRest, change: Change, created: dict[Target, str], out: Write) -> None:
    fields = dict(change.fields)
    match change.target, change.action:
        case Target.APP, Action.CREATE:
            app = await rest.create_application(fields)
            created[Target.APP] = app.sid
            out(
                f"  TwiML App {APP_NAME} is {app.sid}: set TWILIO_TWIML_APP_SID={app.sid} "
                "(the gateway's Access Tokens need it)"
            )
        case Target.APP, Action.UPDATE:
            await rest.update_application(_sid(change, created), fields)
        case Target.NUMBER, Action.UPDATE:
            await rest.update_number(_sid(change, created), fields)
        case Target.SIP_DOMAIN, Action.CREATE:
            created[Target.SIP_DOMAIN] = (await rest.create_sip_domain(fields)).sid
        case Target.SIP_DOMAIN, Action.UPDATE:
            await rest.update_sip_domain(_sid(change, created), fields)
        case Target.ACL, Action.CREATE:
            acl = await rest.create_ip_access_control_list(fields["friendly_name"])
            created[Target.ACL] = acl.sid
        case Target.ACL, Action.ADD_ADDRESS:
            await rest.add_ip_address(_sid(change, created), fields["ip_address"])
        case Target.ACL, Action.REMOVE_ADDRESS:
            await rest.remove_ip_address(_sid(change, created), fields["address_sid"])
        case Target.MAPPING, Action.MAP:
            domain_sid = change.sid or created[Target.SIP_DOMAIN]
            acl_sid = fields.get("ip_access_control_list_sid") or created[Target.ACL]
            await rest.map_call_auth_acl(domain_sid, acl_sid)
        case _:
            raise AssertionError(f"no way to {change.describe()}")


def _sid(change: Change, created: dict[Target, str]) -> str:
    """The resource's SID: known from the look-up, or made by an earlier change of this run."""
    return change.sid or created[change.target]


async def provision(
    settings: TwilioAccountSettings,
    *,
    dry_run: bool = False,
    rest: TwilioRest | None = None,
    out: Write = _stdout,
    err: Write = _stderr,
) -> int:
    """Make Twilio hold what calltrail needs: create or update in place, never delete."""
    rest = rest or TwilioRest.from_settings(settings)
    desired = desired_from(settings)
    command = "twilio provision"
    result = await _planned(rest, desired, command, err)
    if isinstance(result, int):
        return result
    for warning in result.warnings:
        out(f"warning: {warning}")
    if result.blockers:
        for blocker in result.blockers:
            err(f"calltrail {command}: {blocker}")
        return PROBLEM
    if not result.changes:
        out("nothing to change: Twilio holds what calltrail needs")
        _hint(result, settings, out)
        return OK
    if dry_run:
        out(f"dry run: {len(result.changes)} change(s) to make, none made:")
    created: dict[Target, str] = {}
    for change in result.changes:
        out(change.describe())
        if dry_run:
            continue
        try:
            await _apply(rest, change, created, out)
        except TwilioError as exc:
            what = f"{change.action.value} {change.label}"
            err(f"calltrail {command}: {what}: {explain(exc, desired)}")
            return CONFIG if exc.auth_failed else PROBLEM
    if not dry_run:
        out(f"done: {len(result.changes)} change(s) made")
    _hint(result, settings, out)
    return OK
