"""Standard Webhooks (https://www.standardwebhooks.com/): sign inferq's callbacks and verify
them on the receiving side. Standard library only.

A callback carries three headers: `webhook-id` (the message id, the same on every retry),
`webhook-timestamp` (unix seconds of this try) and `webhook-signature`, one or more
space-separated `v1,<base64 HMAC-SHA256>` entries, one per signing secret (rotation).
The signed content is `f"{webhook_id}.{webhook_timestamp}."` followed by the raw body.

A receiver (FastAPI; any framework that gives the raw body and the headers works)::

    from fastapi import FastAPI, HTTPException, Request

    from producer.webhooks import WebhookVerificationError, verify

    app = FastAPI()
    SECRETS = ["whsec_..."]  # the secret(s) inferq signs with; two while rotating

    @app.post("/inferq/callback")
    async def callback(request: Request) -> None:
        body = await request.body()  # the raw bytes: verify before parsing
        try:
            verify(body, request.headers, SECRETS)
        except WebhookVerificationError as error:
            raise HTTPException(status_code=400, detail=str(error)) from error
        ...  # json.loads(body); deduplicate retries on request.headers["webhook-id"]
"""

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from secrets import token_bytes

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300
_VERSION = "v1"
_ID, _TIMESTAMP, _SIGNATURE = "webhook-id", "webhook-timestamp", "webhook-signature"


class WebhookVerificationError(ValueError):
    """A callback failed verification; the message says which check failed."""


def parse_secret(secret: str) -> bytes:
    """The key bytes of a `whsec_<base64>` secret (padding optional). ValueError otherwise;
    the message never repeats the secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret must start with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as error:
        raise ValueError(f"a webhook secret must be {SECRET_PREFIX!r} + base64") from error
    if not key:
        raise ValueError(f"a webhook secret must have a key after {SECRET_PREFIX!r}")
    return key


def new_secret() -> str:
    """A fresh secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(32)).decode("ascii")


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def signature(msg_id: str, timestamp: int, body: bytes, secret: str) -> str:
    """One `v1,<base64>` signature entry of a message with one secret."""
    digest = _digest(parse_secret(secret), msg_id, timestamp, body)
    return f"{_VERSION},{base64.b64encode(digest).decode('ascii')}"


def sign(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """The three headers of a callback, signed with each secret (ValueError if none)."""
    if not secrets:
        raise ValueError("signing a webhook needs at least one secret")
    return {
        _ID: msg_id,
        _TIMESTAMP: str(timestamp),
        _SIGNATURE: " ".join(signature(msg_id, timestamp, body, secret) for secret in secrets),
    }


def _seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name, "")
    if not value:
        raise WebhookVerificationError(f"missing {name} header")
    return value


_MAX_TIMESTAMP_DIGITS = 20  # more than any 64-bit unix time has


def _check_timestamp(raw: str, tolerance_s: float, now: float) -> int:
    if not (raw.isascii() and raw.isdigit()):
        raise WebhookVerificationError(f"{_TIMESTAMP} is not an integer: {raw!r}")
    if len(raw) > _MAX_TIMESTAMP_DIGITS:  # int() refuses over 4,300 digits: say it first
        raise WebhookVerificationError(
            f"{_TIMESTAMP} has {len(raw)} digits: not a unix time in seconds"
        )
    timestamp = int(raw)
    if now - timestamp > tolerance_s:
        raise WebhookVerificationError(
            f"{_TIMESTAMP} is too old: {_seconds(now - timestamp)} s in the past, "
            f"more than the tolerance of {_seconds(tolerance_s)} s"
        )
    if timestamp - now > tolerance_s:
        raise WebhookVerificationError(
            f"{_TIMESTAMP} is too new: {_seconds(timestamp - now)} s in the future, "
            f"more than the tolerance of {_seconds(tolerance_s)} s"
        )
    return timestamp


def _v1_signatures(header: str) -> list[bytes]:
    """The decoded v1 entries; other versions and malformed entries are skipped."""
    found = []
    for entry in header.split():
        version, comma, encoded = entry.partition(",")
        if version != _VERSION or not comma:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except binascii.Error:
            continue
    return found


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secret: str | Sequence[str],
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Check that `body` and `headers` are a callback signed with `secret` (or with any of
    several secrets) within `tolerance_s` of `now` (default: the clock).

    Header names are case-insensitive (a dict, starlette or httpx headers). Raises
    WebhookVerificationError when the callback must be rejected. An invalid `secret` is a
    programming error, not a verification failure: a plain ValueError from `parse_secret`.
    """
    secrets = [secret] if isinstance(secret, str) else list(secret)
    if not secrets:
        raise ValueError("verifying a webhook needs at least one secret")
    keys = [parse_secret(each) for each in secrets]
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = _header(lowered, _ID)
    raw_timestamp = _header(lowered, _TIMESTAMP)
    signatures = _v1_signatures(_header(lowered, _SIGNATURE))
    timestamp = _check_timestamp(raw_timestamp, tolerance_s, time.time() if now is None else now)
    if not signatures:
        raise WebhookVerificationError(f"{_SIGNATURE} has no {_VERSION} signature")
    expected = [_digest(key, msg_id, timestamp, body) for key in keys]
    if not any(hmac.compare_digest(want, got) for want in expected for got in signatures):
        raise WebhookVerificationError(
            "no signature matches: the body, the webhook-id, the webhook-timestamp or the "
            "secret differ from what was signed"
        )
