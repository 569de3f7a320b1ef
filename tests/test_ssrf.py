"""Callback URLs that reach non-public addresses are refused; DNS is a fake resolver
(except for `localhost`, which only reaches the loopback)."""

import ipaddress
import re
import socket

import httpx
import pytest

from producer.webhooks import new_secret
from results_api.webhooks.attempt import Outcome, Sender, pinned
from results_api.webhooks.deliveries import Delivery, delivery_id
from results_api.webhooks.settings import Network
from results_api.webhooks.ssrf import (
    CallbackRefused,
    Resolver,
    check_callback_url,
    refusal,
    resolve,
)
from schemas.errors import ErrorCode, PermanentError
from tests.receiver import running_receiver

HINT = (
    "callbacks may only reach public addresses (allow networks with INFERQ_WEBHOOK_ALLOW_PRIVATE)"
)
PUBLIC = "93.184.215.14"
NOTHING_ALLOWED: tuple[Network, ...] = ()


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def answers(*addresses: str, calls: list[tuple[str, int]] | None = None) -> Resolver:
    """A resolver that answers `addresses` for any host and notes each question."""

    async def fake(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append((host, port))
        return list(addresses)

    return fake


async def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"an IP literal must not be resolved, got {host}:{port}")


async def unresolvable(host: str, port: int) -> list[str]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("fec0::1", "private"),  # site-local: Python counts it as global
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "metadata"),
        ("2002:a00:1::", "private"),
        ("64:ff9b::7f00:1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not public"),
        ("192.0.2.1", "not public"),
        ("2001:db8::1", "not public"),
    ],
)
def test_refusal_names_why_an_address_is_not_public(address: str, reason: str) -> None:
    assert refusal(address, NOTHING_ALLOWED) == reason


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_refusal_lets_public_addresses_through(address: str) -> None:
    assert refusal(address, NOTHING_ALLOWED) is None


def test_allowed_networks_let_their_addresses_through_and_only_those() -> None:
    allowed = [ipaddress.ip_network("127.0.0.0/8")]
    assert refusal("127.0.0.1", allowed) is None
    assert refusal("::ffff:127.0.0.2", allowed) is None
    assert refusal("::1", allowed) == "loopback"
    assert refusal("10.0.0.1", allowed) == "private"


async def test_a_public_address_is_allowed_with_the_default_ports() -> None:
    calls: list[tuple[str, int]] = []
    resolver = answers(PUBLIC, calls=calls)
    assert await check_callback_url("https://Example.COM/cb", NOTHING_ALLOWED, resolver) == [PUBLIC]
    assert await check_callback_url("http://example.com/cb", NOTHING_ALLOWED, resolver) == [PUBLIC]
    assert await check_callback_url("http://example.com:8080", NOTHING_ALLOWED, resolver) == [
        PUBLIC
    ]
    assert calls == [("example.com", 443), ("example.com", 80), ("example.com", 8080)]


@pytest.mark.parametrize(
    ("address", "described"),
    [
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.0.0.1", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.0.10", "a private address"),
        ("169.254.10.10", "a link-local address"),
        ("169.254.169.254", "a metadata address"),
        ("fd00:ec2::254", "a metadata address"),
        ("100.100.100.200", "a metadata address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("0.0.0.0", "an unspecified address"),
        ("100.64.0.1", "not a public address"),
    ],
)
async def test_a_host_resolving_to_a_non_public_address_is_refused(
    address: str, described: str
) -> None:
    message = f"callback url host 'hooks.example' resolves to {address}, {described}: {HINT}"
    with pytest.raises(CallbackRefused, match=exactly(message)):
        await check_callback_url("https://hooks.example/cb", NOTHING_ALLOWED, answers(address))


async def test_one_private_address_among_public_ones_refuses_the_url() -> None:
    message = f"callback url host 'hooks.example' resolves to 10.1.2.3, a private address: {HINT}"
    with pytest.raises(CallbackRefused, match=exactly(message)):
        await check_callback_url(
            "https://hooks.example/cb", NOTHING_ALLOWED, answers(PUBLIC, "10.1.2.3")
        )


@pytest.mark.parametrize(
    ("url", "host", "described"),
    [
        ("http://127.0.0.1:8000/cb", "127.0.0.1", "a loopback address"),
        ("http://[::1]:8000/cb", "::1", "a loopback address"),
        ("http://[::ffff:127.0.0.1]/cb", "::ffff:127.0.0.1", "a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "a metadata address"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254", "a metadata address"),
        ("http://0.0.0.0:9000/", "0.0.0.0", "an unspecified address"),
        ("http://[::]/", "::", "an unspecified address"),
    ],
)
async def test_ip_literals_are_checked_without_dns(url: str, host: str, described: str) -> None:
    message = f"callback url host {host!r} is {described}: {HINT}"
    with pytest.raises(CallbackRefused, match=exactly(message)):
        await check_callback_url(url, NOTHING_ALLOWED, no_dns)


async def test_a_public_ip_literal_is_allowed_without_dns() -> None:
    assert await check_callback_url(f"https://{PUBLIC}/cb", NOTHING_ALLOWED, no_dns) == [PUBLIC]


async def test_the_allowlist_permits_its_networks_but_still_refuses_others() -> None:
    allowed = [ipaddress.ip_network("127.0.0.0/8")]
    url = "http://127.0.0.1:9000/cb"
    assert await check_callback_url(url, allowed, no_dns) == ["127.0.0.1"]
    message = f"callback url host 'hooks.internal' resolves to 10.0.0.1, a private address: {HINT}"
    with pytest.raises(CallbackRefused, match=exactly(message)):
        await check_callback_url(
            "http://hooks.internal/", allowed, answers("127.0.0.1", "10.0.0.1")
        )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/cb", "callback url scheme 'ftp' is not allowed: use http or https"),
        ("file:///etc/passwd", "callback url scheme 'file' is not allowed: use http or https"),
        ("example.com/cb", "callback url scheme '' is not allowed: use http or https"),
        (
            "https://user:pass@example.com/cb",
            "callback url must not carry credentials (user:password@host)",
        ),
        ("https://@example.com/cb", "callback url must not carry credentials (user:password@host)"),
        ("https:///cb", "callback url has no host"),
        ("https://:8443/cb", "callback url has no host"),
        (
            "https://example.com:99999/",
            "callback url is not a valid url: Port out of range 0-65535",
        ),
        ("https://[::1/cb", "callback url is not a valid url: Invalid IPv6 URL"),
    ],
)
async def test_malformed_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(CallbackRefused, match=exactly(message)):
        await check_callback_url(url, NOTHING_ALLOWED, answers(PUBLIC))


async def test_an_unresolvable_host_is_refused() -> None:
    message = (
        "callback url host 'nowhere.invalid' does not resolve: [Errno -2] Name or service not known"
    )
    with pytest.raises(CallbackRefused, match=exactly(message)):
        await check_callback_url("https://nowhere.invalid/cb", NOTHING_ALLOWED, unresolvable)


async def test_the_default_resolver_refuses_a_host_it_cannot_encode_without_asking_dns() -> None:
    host = "a" * 64 + ".example"
    message = (
        f"callback url host {host!r} does not resolve: "
        "encoding with 'idna' codec failed (UnicodeError: label empty or too long)"
    )
    with pytest.raises(CallbackRefused, match=exactly(message)):
        await resolve(host, 443)


async def test_a_host_resolving_to_nothing_is_refused() -> None:
    message = "callback url host 'empty.example' resolves to no address"
    with pytest.raises(CallbackRefused, match=exactly(message)):
        await check_callback_url("https://empty.example/cb", NOTHING_ALLOWED, answers())


async def test_a_resolver_answer_that_is_not_an_address_is_refused() -> None:
    message = "callback url host 'odd.example' resolves to 'not-an-ip', not an IP address"
    with pytest.raises(CallbackRefused, match=exactly(message)):
        await check_callback_url("https://odd.example/cb", NOTHING_ALLOWED, answers("not-an-ip"))


async def test_localhost_resolves_and_is_refused_as_loopback() -> None:
    addresses = await resolve("localhost", 80)
    assert addresses
    assert all(ipaddress.ip_address(address).is_loopback for address in addresses)
    message = (
        f"callback url host 'localhost' resolves to {addresses[0]}, a loopback address: {HINT}"
    )
    with pytest.raises(CallbackRefused, match=exactly(message)):
        await check_callback_url("http://localhost:8000/cb", NOTHING_ALLOWED)


def test_callback_refused_is_a_permanent_error_with_its_code() -> None:
    error = CallbackRefused("no")
    assert isinstance(error, PermanentError)
    assert not error.transient
    assert error.code == ErrorCode.CALLBACK_REFUSED


@pytest.mark.parametrize("answer", [["127.0.0.1"], ["127.0.0.2", "127.0.0.1"]])
async def test_the_sender_connects_to_the_address_it_checked(answer: list[str]) -> None:
    """A second DNS answer cannot send a try elsewhere: the host below cannot be resolved
    at all (`.invalid`), so only a connection to the checked address reaches the receiver.
    An address that cannot be reached (nothing listens on 127.0.0.2) passes to the next."""
    asked: list[str] = []

    async def first_answer(host: str, port: int) -> list[str]:
        asked.append(host)
        return answer

    async with (
        running_receiver() as receiver,
        httpx.AsyncClient(follow_redirects=False, trust_env=False) as client,
    ):
        loopback = [ipaddress.ip_network("127.0.0.0/8")]
        sender = Sender(client, [new_secret()], loopback, 10.0, first_answer)
        url = f"http://hooks.invalid:{receiver.port}/hook?job=j1"
        outcome = await sender.attempt(delivery_to(url))
    assert outcome == Outcome(delivered=True, status=200)
    assert asked == ["hooks.invalid"]
    (tried,) = receiver.attempts
    assert tried.headers["host"] == f"hooks.invalid:{receiver.port}"


@pytest.mark.parametrize(
    ("url", "address", "target", "host", "sni"),
    [
        ("http://a.example/h?x=1", "203.0.113.9", "http://203.0.113.9/h?x=1", "a.example", None),
        (
            "https://a.example:8443/h",
            "2001:db8::1",
            "https://[2001:db8::1]:8443/h",
            "a.example:8443",
            "a.example",
        ),
    ],
)
def test_a_pinned_url_keeps_its_host_for_the_header_and_tls(
    url: str, address: str, target: str, host: str, sni: str | None
) -> None:
    pinned_url, host_header, extensions = pinned(url, address)
    assert (str(pinned_url), host_header) == (target, host)
    assert extensions == ({} if sni is None else {"sni_hostname": sni})


def delivery_to(url: str) -> Delivery:
    return Delivery(
        id=delivery_id("j1", "completed"),
        job_id="j1",
        event="completed",
        url=url,
        body="{}",
        next_try_at=0.0,
        created_at=0.0,
    )


async def test_a_try_waits_its_own_timeout_and_an_address_that_times_out_passes() -> None:
    """httpx's default timeout (5 s) does not cut a try short of INFERQ_WEBHOOK_TIMEOUT_S;
    an address may take its share of it to connect, and one that does not connect in time
    passes the try to the next; the last may take what is left."""
    tried: list[tuple[str, dict[str, float]]] = []

    def transport(request: httpx.Request) -> httpx.Response:
        tried.append((request.url.host, request.extensions["timeout"]))
        if request.url.host == "192.0.2.1":
            raise httpx.ConnectTimeout("no answer", request=request)
        return httpx.Response(200)

    addresses = [ipaddress.ip_network("192.0.2.0/24")]
    async with httpx.AsyncClient(transport=httpx.MockTransport(transport)) as client:
        sender = Sender(client, [new_secret()], addresses, 12.0, answers("192.0.2.1", "192.0.2.2"))
        outcome = await sender.attempt(delivery_to("http://hooks.example/hook"))
    assert outcome == Outcome(delivered=True, status=200)
    share = {"connect": 6.0, "read": 12.0, "write": 12.0, "pool": 12.0}
    rest = {"connect": 12.0, "read": 12.0, "write": 12.0, "pool": 12.0}
    assert tried == [("192.0.2.1", share), ("192.0.2.2", rest)]
