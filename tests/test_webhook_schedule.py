"""The retry schedule and what a try's outcome does to a delivery (no network)."""

from email.utils import formatdate

import httpx
import pytest

from results_api.settings import ApiSettings
from results_api.webhooks.attempt import Outcome, outcome_of
from results_api.webhooks.courier import settle
from results_api.webhooks.deliveries import Delivery, DeliveryState, delivery_id
from results_api.webhooks.schedule import MAX_RETRY_AFTER_S, next_pause, retry_after_s
from results_api.webhooks.settings import WebhookSettings, parse_schedule

NOW = 1_800_000_000.0
PAUSES = (5.0, 300.0, 1800.0)


def pending() -> Delivery:
    return Delivery(
        id=delivery_id("j1", "completed"),
        job_id="j1",
        event="completed",
        url="https://example.com/hook",
        body="{}",
        next_try_at=NOW,
        created_at=NOW,
    )


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_s("120", NOW) == 120.0
    assert retry_after_s(formatdate(NOW + 30, usegmt=True), NOW) == 30.0
    assert retry_after_s(formatdate(NOW - 30, usegmt=True), NOW) == 0.0
    assert retry_after_s("soon", NOW) is None
    assert retry_after_s("²", NOW) is None  # a digit to str.isdigit, not to float()
    assert retry_after_s("9" * 5000, NOW) == float("inf")  # capped by next_pause
    assert retry_after_s("Mon, 1 Jan 99999999999 00:00:00 GMT", NOW) is None
    assert retry_after_s("Mon, 1 Jan 2030 00:00:00 +99999999999999", NOW) is None
    assert retry_after_s(None, NOW) is None


def test_pauses_follow_the_schedule_with_jitter_then_stop() -> None:
    for attempts, pause in enumerate(PAUSES, start=1):
        for _ in range(50):
            got = next_pause(PAUSES, attempts, None)
            assert got is not None
            assert pause * 0.8 <= got <= pause * 1.2
    assert next_pause(PAUSES, len(PAUSES) + 1, None) is None
    assert next_pause((), 1, None) is None


def test_retry_after_lengthens_a_pause_up_to_six_hours() -> None:
    assert next_pause(PAUSES, 1, 3600.0) == 3600.0
    assert next_pause(PAUSES, 1, 10 * 24 * 3600.0) == MAX_RETRY_AFTER_S
    shorter = next_pause(PAUSES, 2, 1.0)
    assert shorter is not None
    assert shorter >= 240.0  # never shortens the schedule


@pytest.mark.parametrize(
    ("status", "retry", "gone"),
    [
        (200, False, False),
        (204, False, False),
        (410, False, True),
        (500, True, False),
        (503, True, False),
        (408, True, False),
        (429, True, False),
        (400, False, False),
        (404, False, False),
    ],
)
def test_which_answers_are_tried_again(status: int, retry: bool, gone: bool) -> None:
    outcome = outcome_of(httpx.Response(status, headers={"Retry-After": "7"}))
    assert (outcome.delivered, outcome.retry, outcome.gone) == (status < 300, retry, gone)
    assert outcome.status == status


def test_a_2xx_delivers() -> None:
    after = settle(pending(), Outcome(True, status=200), PAUSES, NOW)
    assert (after.state, after.attempts, after.delivered_at, after.next_try_at) == (
        DeliveryState.DELIVERED,
        1,
        NOW,
        None,
    )


def test_a_retried_failure_is_due_again_after_its_pause() -> None:
    outcome = Outcome(False, retry=True, status=503, error="the receiver answered 503")
    after = settle(pending(), outcome, PAUSES, NOW)
    assert after.state is DeliveryState.PENDING
    assert after.next_try_at is not None
    assert NOW + 4 <= after.next_try_at <= NOW + 6
    assert (after.attempts, after.last_status, after.last_error) == (
        1,
        503,
        "the receiver answered 503",
    )


def test_the_last_try_gives_up_and_says_so() -> None:
    spent = pending().model_copy(update={"attempts": len(PAUSES)})
    after = settle(spent, Outcome(False, retry=True, error="no answer within 10 s"), PAUSES, NOW)
    assert after.state is DeliveryState.GIVEN_UP
    assert after.last_error == "no answer within 10 s; gave up after 4 tries"
    assert after.next_try_at is None


def test_an_answer_not_retried_gives_up_at_once() -> None:
    outcome = outcome_of(httpx.Response(404))
    after = settle(pending(), outcome, PAUSES, NOW)
    assert (after.state, after.attempts) == (DeliveryState.GIVEN_UP, 1)
    assert after.last_error == "the receiver answered 404, which is not retried"


def test_again_restarts_the_schedule_with_the_same_id() -> None:
    given_up = pending().model_copy(update={"state": DeliveryState.GIVEN_UP, "attempts": 8})
    again = given_up.again(NOW + 60)
    assert (again.id, again.state, again.attempts, again.next_try_at) == (
        given_up.id,
        DeliveryState.PENDING,
        0,
        NOW + 60,
    )


def test_settings_refuse_bad_secrets_networks_and_schedules() -> None:
    with pytest.raises(ValueError, match="a webhook secret must start with 'whsec_'"):
        WebhookSettings(webhook_secret="hunter2")
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        WebhookSettings(webhook_allow_private="10.0.0.0/33")
    with pytest.raises(ValueError, match="retry pauses must not be negative"):
        WebhookSettings(webhook_retry_schedule="5,-1")
    assert parse_schedule("5, 300 1800") == (5.0, 300.0, 1800.0)
    default = WebhookSettings()
    assert sum(default.retry_pauses) == 5 + 300 + 1800 + 7200 + 18000 + 36000 + 36000


def test_the_api_reads_its_settings_from_inferq_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    monkeypatch.setenv("INFERQ_BOOTSTRAP_SERVERS", "kafka-1:9092")
    monkeypatch.setenv("INFERQ_WEBHOOK_SECRET", secret)
    monkeypatch.setenv("INFERQ_WEBHOOK_ALLOW_PRIVATE", "10.0.0.0/8")
    monkeypatch.setenv("INFERQ_RESULT_RETENTION_S", "60")
    settings = ApiSettings()
    assert settings.bootstrap_servers == "kafka-1:9092"
    assert settings.webhook_secrets == [secret]
    assert [str(n) for n in settings.allowed_networks] == ["10.0.0.0/8"]
    assert settings.result_retention_s == 60.0
