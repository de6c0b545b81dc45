"""The LINE user id of a call through LINE's SIP domain (CONTRACT.md section 9). Pure.

LINE's Call API puts the caller's LINE user id in a User-to-User header; Twilio hands SIP
headers to the voice URL as ``SipHeader_<name>`` parameters. The header's value may be the id
itself, hex-encoded (RFC 7433: ``…;encoding=hex``), percent-encoded, or followed by
``;``-parameters. It is decoded once: percent-decoding, then hex when ``;encoding=hex``; the
part before the first ``;`` must then be exactly a LINE user id, ``U`` and 32 lowercase hex
digits. Anything else is absent: never a wrong id, never an exception (a call must ring).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable
from urllib.parse import unquote

LINE_USER_ID = re.compile(r"U[0-9a-f]{32}")
#: The parameters Twilio posts for the two spellings of the header, in the order they are read.
UUI_PARAMS = ("SipHeader_X-User-To-User", "SipHeader_User-to-User")
_UUI_PARAMS_FOLDED = frozenset(name.casefold() for name in UUI_PARAMS)
MAX_UUI_LENGTH = 1024  # a User-to-User value is at most 129 octets hex-encoded (RFC 7433)


def is_line_user_id(value: object) -> bool:
    return isinstance(value, str) and LINE_USER_ID.fullmatch(value) is not None


def parse_uui(value: str) -> str | None:
    """The LINE user id in one header value, or None."""
    if len(value) > MAX_UUI_LENGTH:
        return None
    try:
        decoded = unquote(value, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        return None
    head, _, rest = decoded.partition(";")
    if _hex_encoded(rest):
        if len(head) != 66 or not head.isascii():  # "U" + 32 hex digits, as hex: 66 digits
            return None
        try:
            head = binascii.unhexlify(head).decode("ascii")
        except (binascii.Error, ValueError):
            return None
    return head if LINE_USER_ID.fullmatch(head) else None


def _hex_encoded(parameters: str) -> bool:
    """Whether the ``;``-parameters after the value say ``encoding=hex`` (RFC 7433: names and
    the token are case-insensitive, whitespace around ``;`` and ``=`` allowed)."""
    for parameter in parameters.split(";"):
        name, _, token = parameter.partition("=")
        if name.strip(" \t").lower() == "encoding" and token.strip(" \t").lower() == "hex":
            return True
    return False


def line_user_id(form: Iterable[tuple[str, str]]) -> str | None:
    """The LINE user id from a voice request's form (its ``(name, value)`` pairs), or None.

    Both spellings of the header are read, whatever the case Twilio gives their names; when
    they hold two different ids the call has no id rather than a wrong one.
    """
    found = {
        parsed
        for name, value in form
        if name.casefold() in _UUI_PARAMS_FOLDED and (parsed := parse_uui(value)) is not None
    }
    return found.pop() if len(found) == 1 else None
