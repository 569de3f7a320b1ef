"""One try of a delivery: check where the URL leads, sign, POST, and say what came of it."""

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from inferq import __version__
from producer.webhooks import sign
from results_api.webhooks.deliveries import Delivery
from results_api.webhooks.settings import Network
from results_api.webhooks.ssrf import (
    CallbackRefused,
    Resolver,
    Unresolvable,
    check_callback_url,
    resolve,
)

# Tried again: no answer, a broken connection, a server error, 408 and 429.
RETRIED_STATUSES = frozenset({408, 429})
USER_AGENT = f"inferq-webhooks/{__version__}"


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    retry: bool = False
    gone: bool = False
    status: int | None = None
    error: str | None = None
    retry_after: str | None = None


def outcome_of(response: httpx.Response) -> Outcome:
    status = response.status_code
    if 200 <= status < 300:
        return Outcome(delivered=True, status=status)
    if status == 410:
        return Outcome(False, gone=True, status=status, error="the receiver answered 410 Gone")
    retry = status >= 500 or status in RETRIED_STATUSES
    error = f"the receiver answered {status}" + ("" if retry else ", which is not retried")
    return Outcome(False, retry, status=status, error=error, retry_after=_header(response))


def _header(response: httpx.Response) -> str | None:
    value = response.headers.get("retry-after")
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Sender:
    client: httpx.AsyncClient
    secrets: Sequence[str]
    allowed: Sequence[Network]
    timeout_s: float
    resolver: Resolver = resolve

    async def attempt(self, delivery: Delivery) -> Outcome:
        """One try, the address check included, within `timeout_s` in all; the answer's
        body is never read."""
        no_answer = Outcome(False, retry=True, error=f"no answer within {self.timeout_s:g} s")
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._post(delivery)
        except (TimeoutError, httpx.TimeoutException):
            return no_answer
        except Unresolvable as exc:
            return Outcome(False, retry=True, error=str(exc))
        except CallbackRefused as exc:
            return Outcome(False, error=str(exc))
        except httpx.HTTPError as exc:
            return Outcome(False, retry=True, error=f"{type(exc).__name__}: {exc}")

    async def _post(self, delivery: Delivery) -> Outcome:
        addresses = await check_callback_url(delivery.url, self.allowed, self.resolver)
        body = delivery.body.encode()
        headers = sign(delivery.id, int(time.time()), body, self.secrets)
        headers["content-type"] = "application/json"
        headers["user-agent"] = USER_AGENT
        # An address may take its share of the timeout to connect (TLS included) before
        # the next is tried; the last may take what is left; httpx's own default (5 s)
        # would cut the try short.
        share = httpx.Timeout(self.timeout_s, connect=self.timeout_s / len(addresses))
        for address in addresses[:-1]:  # the next one when one cannot be reached
            with contextlib.suppress(httpx.ConnectError, httpx.ConnectTimeout):
                return await self._post_to(delivery.url, address, body, headers, share)
        last = httpx.Timeout(self.timeout_s)  # the try's own limit ends it in time
        return await self._post_to(delivery.url, addresses[-1], body, headers, last)

    async def _post_to(
        self, url: str, address: str, body: bytes, headers: dict[str, str], waits: httpx.Timeout
    ) -> Outcome:
        target, host, extensions = pinned(url, address)
        request = self.client.stream(
            "POST",
            target,
            content=body,
            headers={**headers, "host": host},
            extensions=extensions,
            timeout=waits,
        )
        async with request as response:
            return outcome_of(response)


def pinned(url: str, address: str) -> tuple[httpx.URL, str, dict[str, Any]]:
    """`url` with its host replaced by `address`, the address that was checked, so that the
    connection goes there and no second DNS answer can send it elsewhere (rebinding); the
    `Host` header and, for https, the TLS server name (and so the certificate check) keep
    the URL's own host."""
    original = httpx.URL(url)
    extensions = {"sni_hostname": original.host} if original.scheme == "https" else {}
    return original.copy_with(host=address), original.netloc.decode(), extensions
