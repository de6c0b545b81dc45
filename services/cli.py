"""The ``calltrail`` command: one entry point for every service and tool (CONTRACT.md §1).

Subcommands import their service lazily, so ``calltrail gateway`` never loads the recorder.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from services.common.logging import configure_logging
from services.common.settings import SettingsError, load_settings


def _gateway(_args: argparse.Namespace) -> int:
    from services.gateway.app import run
    from services.gateway.settings import GatewaySettings

    settings = load_settings(GatewaySettings, "gateway")
    configure_logging(settings.log_level, secrets=settings.secret_values())
    run(settings)
    return 0


def _dev(args: argparse.Namespace) -> int:
    from services.devtools.dev import run_dev

    return run_dev(gateway_port=args.gateway_port)


def _twilio_signature(args: argparse.Namespace) -> int:
    import os
    from urllib.parse import parse_qsl

    from services.devtools.twilio_player import TwilioSigner

    token = os.environ.get("TWILIO_AUTH_TOKEN")
    if not token:
        print(
            "calltrail twilio-signature: TWILIO_AUTH_TOKEN is required but not set", file=sys.stderr
        )
        return 2
    params = dict(parse_qsl(args.body, keep_blank_values=True))
    print(TwilioSigner(token, "").signature(args.url, params))
    return 0


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
    sign = commands.add_parser(
        "twilio-signature",
        help="print the X-Twilio-Signature Twilio would send for a URL and form body",
    )
    sign.add_argument("url", help="the full public URL, query string included")
    sign.add_argument("body", help="the form body, URL-encoded (a=1&b=2)")
    sign.set_defaults(func=_twilio_signature)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        sys.exit(args.func(args))
    except SettingsError as exc:
        print(exc.code, file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
