"""Topic names: one request topic per model, one results topic, one dead-letter topic,
one topic of cancellations."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str = "inferq"

    def requests(self, model: str) -> str:
        return f"{self.prefix}.requests.{model}"

    @property
    def results(self) -> str:
        return f"{self.prefix}.results"

    @property
    def models(self) -> str:
        """Workers' announcements of the models they serve."""
        return f"{self.prefix}.models"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    @property
    def cancels(self) -> str:
        """Requests to cancel jobs (key = job_id): every worker reads all of them."""
        return f"{self.prefix}.cancels"

    @property
    def webhooks_dead(self) -> str:
        """Webhook deliveries that ran out of tries (key = job_id)."""
        return f"{self.prefix}.webhooks.dead"

    def worker_group(self, model: str) -> str:
        return f"{self.prefix}.workers.{model}"
