"""Optional bearer keys: each key belongs to one tenant, and only its SHA-256 is configured.

`INFERQ_API_KEYS` lists `tenant:sha256-hex` entries (`inferq keys new TENANT` makes one);
several entries may name one tenant, so a key can be rotated without downtime. With no
entries, authentication is off and every caller sees every job.
"""

import hashlib
import hmac
import re
import secrets

from results_api.errors import ApiError
from schemas import ErrorCode
from schemas.messages import TENANT_PATTERN

KEY_PREFIX = "iq_"
_SEPARATORS = re.compile(r"[,\s]+")
_HEX = re.compile(r"[0-9a-f]{64}")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def hash_key(key: str) -> str:
    """The SHA-256 of a key's UTF-8, in lowercase hex: what the settings hold."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random key (256 bits) to give to one client."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def parse_keys(text: str) -> dict[str, str]:
    """`{sha256-hex: tenant}` of `tenant:sha256-hex` entries separated by commas or spaces.

    Raises ValueError naming the entry by its position; the message never repeats a hash
    (or a key pasted by mistake in place of one).
    """
    keys: dict[str, str] = {}
    for number, entry in enumerate(filter(None, _SEPARATORS.split(text)), start=1):
        tenant, sep, digest = entry.partition(":")
        where = f"INFERQ_API_KEYS entry {number}"
        if not sep:
            raise ValueError(f"{where}: expected tenant:sha256-hex, found no ':'")
        if not re.fullmatch(TENANT_PATTERN, tenant):
            raise ValueError(
                f"{where}: tenant {tenant!r} must be 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        if not _HEX.fullmatch(digest):
            raise ValueError(
                f"{where}: after the tenant and ':' expected the key's SHA-256 as 64 "
                "lowercase hex characters"
            )
        if keys.get(digest, tenant) != tenant:
            raise ValueError(
                f"{where}: the same key is listed for tenants '{keys[digest]}' and '{tenant}'"
            )
        keys[digest] = tenant
    return keys


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, ErrorCode.UNAUTHORIZED, message, dict(_CHALLENGE))


class Keys:
    """The configured keys: who presents which key (or nobody, with authentication off)."""

    def __init__(self, text: str) -> None:
        self._entries = tuple((d.encode(), tenant) for d, tenant in parse_keys(text).items())

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    def tenant_of(self, authorization: str | None) -> str | None:
        """The tenant of an `Authorization` header's bearer key; None with authentication off.

        Raises a 401 ApiError for a missing header, another scheme or an unknown key.
        """
        if not self.enabled:
            return None
        if authorization is None or not authorization.strip():
            raise _unauthorized("missing bearer key")
        scheme, _, key = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise _unauthorized("expected Authorization: Bearer <key>")
        if not key.strip():
            raise _unauthorized("missing bearer key")
        digest = hash_key(key.strip()).encode()
        tenant = None
        for known, owner in self._entries:  # every one, in constant time: no early exit
            if hmac.compare_digest(digest, known):
                tenant = owner
        if tenant is None:
            raise _unauthorized("unknown API key")
        return tenant


def visible(job_tenant: str | None, caller: str | None, keys_enabled: bool) -> bool:
    """Whether a caller may see a job: any job with authentication off, else only its
    tenant's (a job without a tenant is no key's)."""
    if not keys_enabled:
        return True
    return caller is not None and job_tenant == caller
