"""Refuse callback URLs that would make the API reach a non-public address (SSRF).

A URL is checked on its resolved addresses, not on its spelling: every address its host
resolves to must be public, or inside a network the operator allowed
(INFERQ_WEBHOOK_ALLOW_PRIVATE). The addresses are returned so that a sender can connect to
exactly those, and a second resolution cannot swap in another (DNS rebinding).
"""

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

from results_api.webhooks.settings import Network
from schemas.errors import ErrorCode, PermanentError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

DEFAULT_PORTS = {"http": 80, "https": 443}
METADATA = frozenset(
    ipaddress.ip_address(text) for text in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
PRIVATE = tuple(
    ipaddress.ip_network(text)
    # fec0::/10: IPv6 site-local, deprecated (RFC 3879) and still routed inside some sites
    for text in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fec0::/10")
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
_HINT = (
    "callbacks may only reach public addresses (allow networks with INFERQ_WEBHOOK_ALLOW_PRIVATE)"
)


class CallbackRefused(PermanentError):
    """A callback URL the API will not call: not http(s), or it reaches a non-public address."""

    code = ErrorCode.CALLBACK_REFUSED


class Unresolvable(CallbackRefused):
    """The host does not resolve now: refused at submit, tried again at delivery (DNS
    trouble may pass)."""


def _does_not_resolve(host: str, error: Exception) -> CallbackRefused:
    return Unresolvable(f"callback url host {host!r} does not resolve: {error}")


async def resolve(host: str, port: int) -> list[str]:
    """The distinct addresses `host` resolves to, in the resolver's order."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise _does_not_resolve(host, error) from error
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_ipv4(address: Address) -> Address:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4, Teredo), else itself."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return address


def refusal(address: str, allowed: Sequence[Network]) -> str | None:
    """None when `address` may be reached; else why not, in one word. An address inside an
    `allowed` network may always be reached; any other only when it is global.
    ValueError when `address` is not an IP address."""
    original = ipaddress.ip_address(address)
    target = _embedded_ipv4(original)
    if any(ip in network for network in allowed for ip in (original, target)):
        return None
    checks: tuple[tuple[bool, str], ...] = (
        (target.is_unspecified, "unspecified"),
        (target.is_loopback, "loopback"),
        (target in METADATA, "metadata"),
        (target.is_link_local, "link-local"),
        (target.is_multicast, "multicast"),
        (target.is_reserved, "reserved"),
        (any(target in network for network in PRIVATE), "private"),
        (not target.is_global, "not public"),
    )
    return next((reason for failed, reason in checks if failed), None)


def _described(reason: str) -> str:
    if reason == "not public":
        return "not a public address"
    article = "an" if reason[0] in "aeiou" else "a"
    return f"{article} {reason} address"


def _refuse(host: str, address: str, reason: str, *, literal: bool) -> CallbackRefused:
    where = "is" if literal else f"resolves to {address},"
    return CallbackRefused(f"callback url host {host!r} {where} {_described(reason)}: {_HINT}")


def _host_and_port(url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise CallbackRefused(f"callback url is not a valid url: {error}") from error
    if parts.scheme not in DEFAULT_PORTS:
        raise CallbackRefused(
            f"callback url scheme {parts.scheme!r} is not allowed: use http or https"
        )
    if "@" in parts.netloc:
        raise CallbackRefused("callback url must not carry credentials (user:password@host)")
    if not parts.hostname:
        raise CallbackRefused("callback url has no host")
    return parts.hostname, DEFAULT_PORTS[parts.scheme] if port is None else port


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


async def check_callback_url(
    url: str, allowed: Sequence[Network], resolver: Resolver = resolve
) -> list[str]:
    """The addresses `url` reaches when every one of them is allowed; CallbackRefused
    otherwise. IP literals are checked without DNS."""
    host, port = _host_and_port(url)
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = await resolver(host, port)
        except socket.gaierror as error:
            raise _does_not_resolve(host, error) from error
    if not addresses:
        raise CallbackRefused(f"callback url host {host!r} resolves to no address")
    for address in addresses:
        try:
            reason = refusal(address, allowed)
        except ValueError as error:
            raise CallbackRefused(
                f"callback url host {host!r} resolves to {address!r}, not an IP address"
            ) from error
        if reason is not None:
            raise _refuse(host, address, reason, literal=literal is not None)
    return addresses
