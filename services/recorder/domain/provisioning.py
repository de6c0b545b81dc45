"""What calltrail needs from Twilio, compared with what Twilio has (CONTRACT.md section 10).

Pure: the desired resources from the settings' values, the observed ones as plain value
objects (the Twilio adapter builds them), and the comparison, which says for each resource
``ok``, ``differs`` (with what) or ``missing``, and lists the changes that make it so, in the
order they must be made. Nothing here talks to Twilio.

Changes only create, update in place, add an address to the list or remove one from it, and
map the list: a SIP domain, a number or the list itself is never deleted, a number never bought.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

APP_NAME = "calltrail"  # the TwiML App used when TWILIO_TWIML_APP_SID is empty
LINE_ACL_NAME = "calltrail-line"  # the IP access control list holding LINE's addresses
SIP_DOMAIN_FRIENDLY_NAME = "calltrail LINE"
METHOD = "POST"  # every webhook calltrail serves is a POST


# --- what Twilio has (value objects the adapter fills) -------------------------------------


@dataclass(frozen=True, slots=True)
class Application:
    sid: str
    friendly_name: str
    voice_url: str | None
    voice_method: str | None
    status_callback: str | None
    status_callback_method: str | None


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    sid: str
    phone_number: str
    voice_url: str | None
    voice_method: str | None
    status_callback: str | None
    status_callback_method: str | None
    voice_application_sid: str | None
    trunk_sid: str | None


@dataclass(frozen=True, slots=True)
class SipDomain:
    sid: str
    domain_name: str
    voice_url: str | None
    voice_method: str | None
    voice_status_callback_url: str | None
    voice_status_callback_method: str | None


@dataclass(frozen=True, slots=True)
class IpAccessControlList:
    sid: str
    friendly_name: str


@dataclass(frozen=True, slots=True)
class IpAddress:
    sid: str
    ip_address: str
    cidr_prefix_length: int


@dataclass(frozen=True, slots=True)
class Observed:
    """What the look-ups found. ``apps`` holds the app fetched by SID (zero or one) or the apps
    named ``calltrail``; ``numbers`` the numbers matching the caller ID; ``acls`` the lists
    named ``calltrail-line``; the addresses and mappings belong to the single list/domain."""

    apps: tuple[Application, ...] = ()
    numbers: tuple[PhoneNumber, ...] = ()
    sip_domain: SipDomain | None = None
    acls: tuple[IpAccessControlList, ...] = ()
    acl_addresses: tuple[IpAddress, ...] = ()
    mapped_acl_sids: frozenset[str] = frozenset()


# --- what calltrail needs ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Desired:
    public_base_url: str
    caller_id: str
    app_sid: str | None = None
    sip_domain: str | None = None
    line_ips: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for ip in self.line_ips:
            ipaddress.IPv4Address(ip)  # the settings check this; a programming error otherwise

    def url(self, path: str) -> str:
        return self.public_base_url.rstrip("/") + path

    @property
    def app_fields(self) -> dict[str, str]:
        return {
            "voice_url": self.url("/twiml/voice"),
            "voice_method": METHOD,
            "status_callback": self.url("/twilio/status"),
            "status_callback_method": METHOD,
        }

    @property
    def number_fields(self) -> dict[str, str]:
        return {
            "voice_url": self.url("/twiml/incoming"),
            "voice_method": METHOD,
            "status_callback": self.url("/twilio/status"),
            "status_callback_method": METHOD,
        }

    @property
    def sip_domain_fields(self) -> dict[str, str]:
        return {
            "voice_url": self.url("/twiml/sip"),
            "voice_method": METHOD,
            "voice_status_callback_url": self.url("/twilio/status"),
            "voice_status_callback_method": METHOD,
        }


# --- the comparison ------------------------------------------------------------------------


class State(enum.StrEnum):
    OK = "ok"
    DIFFERS = "differs"
    MISSING = "missing"


class Target(enum.StrEnum):
    APP = "app"
    NUMBER = "number"
    SIP_DOMAIN = "sip_domain"
    ACL = "acl"
    MAPPING = "mapping"


class Action(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    ADD_ADDRESS = "add address"
    REMOVE_ADDRESS = "remove address"
    MAP = "map"


@dataclass(frozen=True, slots=True)
class ResourceStatus:
    target: Target
    label: str  # e.g. "TwiML App calltrail (AP…)"
    state: State
    details: tuple[str, ...] = ()  # what differs, or why it is missing

    def line(self) -> str:
        text = f"{self.label}: {self.state.value}"
        return f"{text} ({'; '.join(self.details)})" if self.details else text


@dataclass(frozen=True, slots=True)
class Change:
    """One request to make. ``sid`` is None where the resource is created by an earlier change
    of the same run (the executor fills it in); ``fields`` use twilio-python's argument names."""

    target: Target
    action: Action
    label: str
    sid: str | None = None
    fields: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        shown = self.action in (Action.CREATE, Action.UPDATE)
        what = ", ".join(f"{name} {value}" for name, value in self.fields) if shown else ""
        return f"{self.action.value} {self.label}" + (f": {what}" if what else "")


@dataclass(frozen=True, slots=True)
class Plan:
    statuses: tuple[ResourceStatus, ...]
    changes: tuple[Change, ...]
    #: Problems provision cannot fix: it stops before any change, status exits 1.
    blockers: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: Set when the app was found by name: the SID to put in TWILIO_TWIML_APP_SID.
    app_sid_hint: str | None = None

    @property
    def all_ok(self) -> bool:
        return not self.blockers and all(s.state is State.OK for s in self.statuses)


def _differences(
    actual: dict[str, str | None], wanted: dict[str, str], case_insensitive: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """The wanted (name, value) pairs the actual values do not match."""
    out = []
    for name, value in wanted.items():
        have = actual.get(name)
        same = (have or "").upper() == value.upper() if name in case_insensitive else have == value
        if not same:
            out.append((name, value))
    return out


def _detail(actual: dict[str, str | None], differences: list[tuple[str, str]]) -> tuple[str, ...]:
    return tuple(
        f"{name} is {actual.get(name) or 'empty'}, wants {value}" for name, value in differences
    )


_METHODS = ("voice_method", "status_callback_method", "voice_status_callback_method")


def _plan_app(desired: Desired, observed: Observed, plan: _Builder) -> None:
    wanted = desired.app_fields
    if desired.app_sid is not None:
        label = f"TwiML App {desired.app_sid}"
        if not observed.apps:
            plan.status(Target.APP, label, State.MISSING, "Twilio does not know this SID")
            plan.block(
                f"TWILIO_TWIML_APP_SID {desired.app_sid}: Twilio does not know this TwiML App "
                "(check the SID, or leave the setting empty to use or create the app "
                f"named {APP_NAME})"
            )
            return
        app = observed.apps[0]
    else:
        label = f"TwiML App {APP_NAME}"
        if len(observed.apps) > 1:
            sids = ", ".join(a.sid for a in observed.apps)
            plan.status(Target.APP, label, State.DIFFERS, f"{len(observed.apps)} apps so named")
            plan.block(
                f"{len(observed.apps)} TwiML Apps are named {APP_NAME} ({sids}): set "
                "TWILIO_TWIML_APP_SID to the one calltrail should use"
            )
            return
        if not observed.apps:
            plan.status(Target.APP, label, State.MISSING)
            plan.change(
                Target.APP,
                Action.CREATE,
                label,
                fields=(("friendly_name", APP_NAME), *wanted.items()),
            )
            return
        app = observed.apps[0]
        plan.app_sid_hint = app.sid
    label = f"TwiML App {app.friendly_name} ({app.sid})"
    actual = {
        "voice_url": app.voice_url,
        "voice_method": app.voice_method,
        "status_callback": app.status_callback,
        "status_callback_method": app.status_callback_method,
    }
    differences = _differences(actual, wanted, _METHODS)
    plan.compare(Target.APP, label, app.sid, actual, differences)


def _plan_number(desired: Desired, observed: Observed, plan: _Builder) -> None:
    label = f"number {desired.caller_id}"
    numbers = [n for n in observed.numbers if n.phone_number == desired.caller_id]
    if not numbers:
        plan.status(Target.NUMBER, label, State.MISSING, "not on this account")
        plan.block(
            f"number {desired.caller_id} (TWILIO_CALLER_ID) is not on this Twilio account: buy "
            "or port it in the Twilio console first (calltrail never buys a number)"
        )
        return
    number = numbers[0]
    label = f"number {number.phone_number} ({number.sid})"
    actual = {
        "voice_url": number.voice_url,
        "voice_method": number.voice_method,
        "status_callback": number.status_callback,
        "status_callback_method": number.status_callback_method,
    }
    plan.compare(
        Target.NUMBER,
        label,
        number.sid,
        actual,
        _differences(actual, desired.number_fields, _METHODS),
    )
    for name, value in (
        ("voice_application_sid", number.voice_application_sid),
        ("trunk_sid", number.trunk_sid),
    ):
        if value:
            plan.warnings.append(
                f"number {number.phone_number} has {name} {value}: Twilio then ignores its "
                "voice URL, so customers' calls never reach calltrail; clear it in the console"
            )


def _plan_sip(desired: Desired, observed: Observed, plan: _Builder) -> None:
    if desired.sip_domain is None:
        return
    wanted = desired.sip_domain_fields
    domain = observed.sip_domain
    domain_label = f"SIP domain {desired.sip_domain}"
    if domain is None:
        plan.status(Target.SIP_DOMAIN, domain_label, State.MISSING)
        plan.change(
            Target.SIP_DOMAIN,
            Action.CREATE,
            domain_label,
            fields=(
                ("domain_name", desired.sip_domain),
                ("friendly_name", SIP_DOMAIN_FRIENDLY_NAME),
                *wanted.items(),
            ),
        )
    else:
        actual = {
            "voice_url": domain.voice_url,
            "voice_method": domain.voice_method,
            "voice_status_callback_url": domain.voice_status_callback_url,
            "voice_status_callback_method": domain.voice_status_callback_method,
        }
        plan.compare(
            Target.SIP_DOMAIN,
            f"{domain_label} ({domain.sid})",
            domain.sid,
            actual,
            _differences(actual, wanted, _METHODS),
        )

    acl_label = f"IP access control list {LINE_ACL_NAME}"
    wanted_ips = list(desired.line_ips)
    if len(observed.acls) > 1:
        sids = ", ".join(a.sid for a in observed.acls)
        plan.status(Target.ACL, acl_label, State.DIFFERS, f"{len(observed.acls)} lists so named")
        plan.block(
            f"{len(observed.acls)} IP access control lists are named {LINE_ACL_NAME} ({sids}): "
            "calltrail cannot tell which is its own; rename or delete the others in the console"
        )
        return
    acl = observed.acls[0] if observed.acls else None
    if acl is None:
        plan.status(Target.ACL, acl_label, State.MISSING)
        plan.change(
            Target.ACL, Action.CREATE, acl_label, fields=(("friendly_name", LINE_ACL_NAME),)
        )
        for ip in wanted_ips:
            plan.change(
                Target.ACL, Action.ADD_ADDRESS, f"{ip} to {acl_label}", fields=(("ip_address", ip),)
            )
    else:
        acl_label = f"{acl_label} ({acl.sid})"
        exact = {a.ip_address: a for a in observed.acl_addresses if a.cidr_prefix_length == 32}
        extra = [a for a in observed.acl_addresses if exact.get(a.ip_address) is not a]
        missing = [ip for ip in wanted_ips if ip not in exact]
        extra += [a for ip, a in exact.items() if ip not in wanted_ips]
        if not extra and not missing:
            plan.status(Target.ACL, acl_label, State.OK)
        else:
            held = ", ".join(_address(a) for a in observed.acl_addresses) or "nothing"
            plan.status(
                Target.ACL,
                acl_label,
                State.DIFFERS,
                f"holds {held}, wants exactly {', '.join(wanted_ips)} (LINE_SIP_IPS)",
            )
        for address in sorted(extra, key=lambda a: a.ip_address):
            plan.change(
                Target.ACL,
                Action.REMOVE_ADDRESS,
                f"{_address(address)} from {acl_label}",
                sid=acl.sid,
                fields=(("address_sid", address.sid),),
            )
        for ip in missing:
            plan.change(
                Target.ACL,
                Action.ADD_ADDRESS,
                f"{ip} to {acl_label}",
                sid=acl.sid,
                fields=(("ip_address", ip),),
            )

    mapping_label = f"call authentication of {desired.sip_domain} by {LINE_ACL_NAME}"
    if domain is not None and acl is not None and acl.sid in observed.mapped_acl_sids:
        plan.status(Target.MAPPING, mapping_label, State.OK)
    else:
        plan.status(Target.MAPPING, mapping_label, State.MISSING)
        plan.change(
            Target.MAPPING,
            Action.MAP,
            f"{LINE_ACL_NAME} to the call authentication of {desired.sip_domain}",
            sid=domain.sid if domain is not None else None,
            fields=(("ip_access_control_list_sid", acl.sid),) if acl is not None else (),
        )


def _address(address: IpAddress) -> str:
    if address.cidr_prefix_length == 32:
        return address.ip_address
    return f"{address.ip_address}/{address.cidr_prefix_length}"


@dataclass(slots=True)
class _Builder:
    statuses: list[ResourceStatus] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    app_sid_hint: str | None = None

    def status(self, target: Target, label: str, state: State, *details: str) -> None:
        self.statuses.append(ResourceStatus(target, label, state, details))

    def block(self, problem: str) -> None:
        self.blockers.append(problem)

    def change(
        self,
        target: Target,
        action: Action,
        label: str,
        sid: str | None = None,
        fields: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.changes.append(Change(target, action, label, sid, fields))

    def compare(
        self,
        target: Target,
        label: str,
        sid: str,
        actual: dict[str, str | None],
        differences: list[tuple[str, str]],
    ) -> None:
        if not differences:
            self.status(target, label, State.OK)
            return
        self.status(target, label, State.DIFFERS, *_detail(actual, differences))
        self.change(target, Action.UPDATE, label, sid=sid, fields=tuple(differences))

    def build(self) -> Plan:
        return Plan(
            tuple(self.statuses),
            tuple(self.changes),
            tuple(self.blockers),
            tuple(self.warnings),
            self.app_sid_hint,
        )


def plan(desired: Desired, observed: Observed) -> Plan:
    """Compare; the changes come in the order they must be made (the list before its addresses,
    the domain and the list before the mapping)."""
    builder = _Builder()
    _plan_app(desired, observed, builder)
    _plan_number(desired, observed, builder)
    _plan_sip(desired, observed, builder)
    return builder.build()
