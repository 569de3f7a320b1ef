"""Settings of webhook delivery (part of the results API's settings, env prefix INFERQ_)."""

import ipaddress

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from producer.webhooks import parse_secret

SVIX_LIKE_SCHEDULE = "5,300,1800,7200,18000,36000,36000"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _words(text: str) -> list[str]:
    return [word for word in text.replace(",", " ").split() if word]


def parse_networks(text: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(word, strict=False) for word in _words(text))


def parse_schedule(text: str) -> tuple[float, ...]:
    pauses = tuple(float(word) for word in _words(text))
    if any(pause < 0 for pause in pauses):
        raise ValueError("retry pauses must not be negative")
    return pauses


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INFERQ_", extra="ignore")

    webhook_secret: str = Field(
        default="",
        description="signing secrets, `whsec_` + base64, space-separated: every callback is "
        "signed with each (rotation). Empty: callbacks are refused at submit",
        repr=False,
    )
    webhook_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="a try that has no 2xx answer by then failed"
    )
    webhook_allow_private: str = Field(
        default="",
        description="networks callbacks may reach although they are not public, comma-separated "
        "CIDRs (`127.0.0.0/8,10.0.0.0/8`); by default loopback, private, link-local and "
        "metadata addresses are refused",
    )
    webhook_retry_schedule: str = Field(
        default=SVIX_LIKE_SCHEDULE,
        description="pauses in seconds before the 2nd, 3rd, ... try (each +-20% jitter); after "
        "the last try the delivery is dead-lettered. Default: 5 s, 5 min, 30 min, 2 h, 5 h, "
        "10 h, 10 h (8 tries over ~27.6 h)",
    )
    webhook_concurrency: int = Field(
        default=32, ge=1, le=1024, description="callbacks sent at once by one API process"
    )
    webhook_poll_ms: int = Field(
        default=1000,
        ge=10,
        le=60_000,
        description="how often a replica looks for due retries that another replica scheduled",
    )
    webhook_group: str | None = Field(
        default=None,
        description="consumer group that turns results into deliveries; default <prefix>.webhooks",
    )

    @field_validator("webhook_secret")
    @classmethod
    def _secrets_are_whsec(cls, value: str) -> str:
        for word in value.split():
            parse_secret(word)
        return value

    @field_validator("webhook_allow_private")
    @classmethod
    def _networks_parse(cls, value: str) -> str:
        parse_networks(value)
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule_parses(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @property
    def webhook_secrets(self) -> list[str]:
        return self.webhook_secret.split()

    @property
    def allowed_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.webhook_allow_private)

    @property
    def retry_pauses(self) -> tuple[float, ...]:
        return parse_schedule(self.webhook_retry_schedule)
