"""Twilio Access Tokens for the Voice JavaScript SDK 2.x in the kintone page."""

from __future__ import annotations

import re
import time

from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant

IDENTITY_PATTERN = re.compile(r"[A-Za-z0-9_]{1,121}")


def is_valid_identity(identity: object) -> bool:
    return isinstance(identity, str) and IDENTITY_PATTERN.fullmatch(identity) is not None


def issue_access_token(
    *,
    account_sid: str,
    api_key: str,
    api_secret: str,
    twiml_app_sid: str,
    identity: str,
    ttl_s: int,
    incoming: bool,
) -> str:
    """A JWT (HS256) with a Voice grant: outgoing calls through our TwiML App; incoming calls
    (``incoming.allow``) only when ``incoming``, i.e. for the ring group's identities."""
    # One clock reading for both ends: twilio's Jwt reads the clock separately for nbf and exp,
    # so a second boundary in between would make the lifetime ttl_s - 1.
    now = int(time.time())
    token = AccessToken(
        account_sid, api_key, api_secret, identity=identity, nbf=now, valid_until=now + ttl_s
    )
    token.add_grant(VoiceGrant(outgoing_application_sid=twiml_app_sid, incoming_allow=incoming))
    jwt = token.to_jwt()
    return jwt.decode() if isinstance(jwt, bytes) else jwt
