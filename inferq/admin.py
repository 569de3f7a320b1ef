"""Create the topics a service needs, with explicit partition counts, when they are missing."""

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from inferq.connections import aiokafka_options
from inferq.settings import KafkaSettings

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36


class TopicError(RuntimeError):
    pass


async def ensure_topics(
    settings: KafkaSettings, partitions: dict[str, int], *, request_timeout_ms: int = 40_000
) -> None:
    """Create each topic in `partitions` (name -> partition count) that does not exist yet;
    each request to the broker waits at most `request_timeout_ms` (aiokafka's default)."""
    admin = AIOKafkaAdminClient(**aiokafka_options(settings), request_timeout_ms=request_timeout_ms)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, count, settings.replication_factor)
            for name, count in partitions.items()
            if name not in existing
        ]
        if not missing:
            return
        response = await admin.create_topics(missing)
        for topic, code, message in response.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise TopicError(f"cannot create topic {topic!r}: error {code} {message or ''}")
            if code == 0:
                log.info("created topic %s with %d partitions", topic, partitions[topic])
    finally:
        await admin.close()
