"""Standard Webhooks signing and verification: the published vector, rotation on both
sides, and one test per way verification can fail."""

import re
from collections.abc import Callable, Mapping

import httpx
import pytest
from starlette.datastructures import Headers

from producer.webhooks import (
    WebhookVerificationError,
    new_secret,
    parse_secret,
    sign,
    signature,
    verify,
)

# The test vector of the reference Python library: standard-webhooks/standard-webhooks,
# libraries/python/tests/test_webhooks.py, test_sign_function (commit 33d368b2).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

OTHER_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="
NO_MATCH = (
    "no signature matches: the body, the webhook-id, the webhook-timestamp or the secret "
    "differ from what was signed"
)


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def signed(secrets: list[str] | None = None) -> dict[str, str]:
    return sign(MSG_ID, TIMESTAMP, BODY, secrets or [SECRET])


def test_signature_matches_the_published_vector() -> None:
    assert signature(MSG_ID, TIMESTAMP, BODY, SECRET) == EXPECTED


def test_sign_gives_the_three_headers_with_one_signature_per_secret() -> None:
    assert signed([SECRET, OTHER_SECRET]) == {
        "webhook-id": MSG_ID,
        "webhook-timestamp": "1614265330",
        "webhook-signature": f"{EXPECTED} {signature(MSG_ID, TIMESTAMP, BODY, OTHER_SECRET)}",
    }


def test_sign_without_secrets_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=exactly("signing a webhook needs at least one secret")):
        sign(MSG_ID, TIMESTAMP, BODY, [])


def test_verify_accepts_the_published_vector() -> None:
    headers = {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(TIMESTAMP),
        "webhook-signature": EXPECTED,
    }
    verify(BODY, headers, SECRET, now=TIMESTAMP)


def test_verify_accepts_a_timestamp_exactly_at_the_tolerance() -> None:
    verify(BODY, signed(), SECRET, now=TIMESTAMP + 300)
    verify(BODY, signed(), SECRET, now=TIMESTAMP - 300)


def test_verify_accepts_any_of_the_receivers_secrets() -> None:
    verify(BODY, signed([OTHER_SECRET]), [SECRET, OTHER_SECRET], now=TIMESTAMP)


def test_verify_accepts_any_of_the_senders_signatures() -> None:
    headers = signed()
    stale = signature(MSG_ID, TIMESTAMP, BODY, OTHER_SECRET)
    headers["webhook-signature"] = f"v2,{EXPECTED[3:]} v1 v1,not-base64! {stale}  {EXPECTED}"
    verify(BODY, headers, SECRET, now=TIMESTAMP)


@pytest.mark.parametrize(
    "wrap",
    [dict, Headers, httpx.Headers],
    ids=["dict", "starlette", "httpx"],
)
def test_verify_reads_header_names_in_any_case(
    wrap: Callable[[dict[str, str]], Mapping[str, str]],
) -> None:
    headers = {name.title(): value for name, value in signed().items()}
    assert sorted(headers) == ["Webhook-Id", "Webhook-Signature", "Webhook-Timestamp"]
    verify(BODY, wrap(headers), SECRET, now=TIMESTAMP)


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_verify_refuses_a_missing_header(name: str) -> None:
    headers = signed()
    del headers[name]
    with pytest.raises(WebhookVerificationError, match=exactly(f"missing {name} header")):
        verify(BODY, headers, SECRET, now=TIMESTAMP)


def test_verify_refuses_an_empty_header() -> None:
    headers = signed() | {"webhook-id": ""}
    with pytest.raises(WebhookVerificationError, match=exactly("missing webhook-id header")):
        verify(BODY, headers, SECRET, now=TIMESTAMP)


@pytest.mark.parametrize(
    "raw", ["soon", "1614265330.0", "-1614265330", " 1614265330", "1_614", "16142653³0"]
)
def test_verify_refuses_a_timestamp_that_is_not_an_integer(raw: str) -> None:
    headers = signed() | {"webhook-timestamp": raw}
    message = f"webhook-timestamp is not an integer: {raw!r}"
    with pytest.raises(WebhookVerificationError, match=exactly(message)):
        verify(BODY, headers, SECRET, now=TIMESTAMP)


def test_verify_refuses_a_timestamp_too_long_to_read() -> None:
    headers = signed() | {"webhook-timestamp": "1" * 5000}
    message = "webhook-timestamp has 5000 digits: not a unix time in seconds"
    with pytest.raises(WebhookVerificationError, match=exactly(message)):
        verify(BODY, headers, SECRET, now=TIMESTAMP)


def test_verify_refuses_a_timestamp_older_than_the_tolerance() -> None:
    message = "webhook-timestamp is too old: 300.5 s in the past, more than the tolerance of 300 s"
    with pytest.raises(WebhookVerificationError, match=exactly(message)):
        verify(BODY, signed(), SECRET, now=TIMESTAMP + 300.5)


def test_verify_refuses_a_timestamp_further_in_the_future_than_the_tolerance() -> None:
    message = "webhook-timestamp is too new: 11 s in the future, more than the tolerance of 10 s"
    with pytest.raises(WebhookVerificationError, match=exactly(message)):
        verify(BODY, signed(), SECRET, tolerance_s=10, now=TIMESTAMP - 11)


def test_verify_refuses_a_header_without_a_v1_signature() -> None:
    headers = signed() | {"webhook-signature": f"v2,{EXPECTED[3:]} v1 v1,%%%"}
    message = "webhook-signature has no v1 signature"
    with pytest.raises(WebhookVerificationError, match=exactly(message)):
        verify(BODY, headers, SECRET, now=TIMESTAMP)


def test_verify_refuses_a_signature_from_another_secret() -> None:
    with pytest.raises(WebhookVerificationError, match=exactly(NO_MATCH)):
        verify(BODY, signed([OTHER_SECRET]), SECRET, now=TIMESTAMP)


def test_verify_refuses_a_body_changed_by_one_byte() -> None:
    with pytest.raises(WebhookVerificationError, match=exactly(NO_MATCH)):
        verify(b'{"test": 2432232315}', signed(), SECRET, now=TIMESTAMP)


def test_verify_refuses_another_message_id() -> None:
    headers = signed() | {"webhook-id": "msg_other"}
    with pytest.raises(WebhookVerificationError, match=exactly(NO_MATCH)):
        verify(BODY, headers, SECRET, now=TIMESTAMP)


def test_verify_refuses_another_timestamp_within_the_tolerance() -> None:
    headers = signed() | {"webhook-timestamp": str(TIMESTAMP + 1)}
    with pytest.raises(WebhookVerificationError, match=exactly(NO_MATCH)):
        verify(BODY, headers, SECRET, now=TIMESTAMP)


def test_verify_refuses_a_tampered_signature() -> None:
    headers = signed() | {"webhook-signature": EXPECTED[:-2] + "A="}
    with pytest.raises(WebhookVerificationError, match=exactly(NO_MATCH)):
        verify(BODY, headers, SECRET, now=TIMESTAMP)


def test_an_invalid_secret_is_a_programming_error_not_a_verification_failure() -> None:
    with pytest.raises(
        ValueError, match=exactly("a webhook secret must start with 'whsec_'")
    ) as caught:
        verify(BODY, signed(), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", now=TIMESTAMP)
    assert type(caught.value) is ValueError


def test_verify_without_secrets_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=exactly("verifying a webhook needs at least one secret")):
        verify(BODY, signed(), [], now=TIMESTAMP)


def test_new_secret_round_trips() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(parse_secret(secret)) == 32
    assert new_secret() != secret
    verify(BODY, sign(MSG_ID, TIMESTAMP, BODY, [secret]), secret, now=TIMESTAMP)


def test_parse_secret_accepts_base64_with_or_without_padding() -> None:
    assert parse_secret("whsec_YWJj") == b"abc"
    assert parse_secret("whsec_YWI=") == b"ab"
    assert parse_secret("whsec_YWI") == b"ab"


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("YWJj", "a webhook secret must start with 'whsec_'"),
        ("WHSEC_YWJj", "a webhook secret must start with 'whsec_'"),
        ("whsec_", "a webhook secret must have a key after 'whsec_'"),
        ("whsec_YW!j", "a webhook secret must be 'whsec_' + base64"),
        ("whsec_YWJjZ", "a webhook secret must be 'whsec_' + base64"),
    ],
    ids=["no-prefix", "upper-case-prefix", "empty-key", "not-base64", "bad-length"],
)
def test_parse_secret_refuses(secret: str, message: str) -> None:
    with pytest.raises(ValueError, match=exactly(message)):
        parse_secret(secret)
