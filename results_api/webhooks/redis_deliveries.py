"""Deliveries in Redis, shared by every API replica on the same store (see deliveries.py).

Keys, under the topic prefix as namespace: `<ns>:wh:<id>` the delivery (JSON),
`<ns>:wh:job:<job_id>` its job's delivery ids, `<ns>:wh:due` pending ids by next try,
`<ns>:wh:gone` URLs that answered 410. Adding and claiming are Lua scripts, so they are
atomic across replicas.
"""

from collections.abc import Awaitable
from typing import Any, TypeVar

from redis.asyncio import Redis

from results_api.redis_store import guarded
from results_api.store import redacted
from results_api.webhooks.deliveries import Delivery, DeliveryState

T = TypeVar("T")

# KEYS: due, then per delivery its key and its job's set. ARGV: per delivery id, doc,
# next_try. Returns 1 per delivery stored, 0 per delivery already there. New deliveries
# are pending: they do not expire.
_ADD = """
local added = {}
for i = 2, #KEYS, 2 do
  local n = (i - 2) / 2
  local id, doc, due = ARGV[1 + n * 3], ARGV[2 + n * 3], ARGV[3 + n * 3]
  if redis.call('SET', KEYS[i], doc, 'NX') then
    redis.call('SADD', KEYS[i + 1], id)
    redis.call('PERSIST', KEYS[i + 1])
    redis.call('ZADD', KEYS[1], due, id)
    added[#added + 1] = 1
  else
    added[#added + 1] = 0
  end
end
return added
"""

# KEYS: due. ARGV: now, leased until, limit, key prefix. Returns the claimed docs.
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local docs = {}
for _, id in ipairs(ids) do
  local doc = redis.call('GET', ARGV[4] .. id)
  if doc then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    docs[#docs + 1] = doc
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return docs
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisDeliveries:
    def __init__(self, redis: "Redis", where: str, namespace: str, retention_s: float) -> None:
        self._redis = redis
        self._where = where
        self._ns = f"{namespace}:wh:"
        self._due = f"{namespace}:wh-due"
        self._gone = f"{namespace}:wh-gone"
        self._ttl_ms = max(1, int(retention_s * 1000))
        self._add = redis.register_script(_ADD)
        self._claim = redis.register_script(_CLAIM)

    @classmethod
    async def connect(cls, url: str, namespace: str, retention_s: float) -> "RedisDeliveries":
        redis = Redis.from_url(url, client_name=f"inferq-{namespace}-webhooks")
        await guarded(redacted(url), redis.ping())
        return cls(redis, redacted(url), namespace, retention_s)

    async def _run(self, call: Awaitable[T]) -> T:
        return await guarded(self._where, call)

    def _key(self, delivery_id: str) -> str:
        return self._ns + delivery_id

    def _job_key(self, job_id: str) -> str:
        return f"{self._ns}job:{job_id}"

    async def add(self, deliveries: list[Delivery]) -> list[Delivery]:
        if not deliveries:
            return []
        keys: list[Any] = [self._due]
        args: list[Any] = []
        for d in deliveries:
            keys += [self._key(d.id), self._job_key(d.job_id)]
            args += [d.id, d.model_dump_json(), d.next_try_at or d.created_at]
        flags = await self._run(self._add(keys=keys, args=args))
        return [d for d, flag in zip(deliveries, flags, strict=True) if flag]

    async def claim(self, now: float, lease_s: float, limit: int) -> list[Delivery]:
        docs = await self._run(
            self._claim(keys=[self._due], args=[now, now + lease_s, limit, self._ns])
        )
        return [Delivery.model_validate_json(doc) for doc in docs]

    async def save(self, delivery: Delivery) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            self._queue_save(pipe, delivery)
            await self._run(pipe.execute())

    def _queue_save(self, pipe: Any, delivery: Delivery) -> None:
        """A pending delivery never expires; a finished one expires with the retention
        (and so does its job's index, unless a pending delivery of the job renews it)."""
        key, job_key = self._key(delivery.id), self._job_key(delivery.job_id)
        if delivery.state is DeliveryState.PENDING and delivery.next_try_at is not None:
            pipe.set(key, delivery.model_dump_json())
            pipe.persist(job_key)
            pipe.zadd(self._due, {delivery.id: delivery.next_try_at})
        else:
            pipe.set(key, delivery.model_dump_json(), px=self._ttl_ms)
            pipe.pexpire(job_key, self._ttl_ms)
            pipe.zrem(self._due, delivery.id)

    async def of_job(self, job_id: str) -> list[Delivery]:
        ids = sorted(await self._run(self._redis.smembers(self._job_key(job_id))))
        if not ids:
            return []
        docs = await self._run(self._redis.mget([self._ns + _text(i) for i in ids]))
        found = [Delivery.model_validate_json(doc) for doc in docs if doc is not None]
        return sorted(found, key=lambda d: d.created_at)

    async def next_due(self) -> float | None:
        first = await self._run(self._redis.zrange(self._due, 0, 0, withscores=True))
        return float(first[0][1]) if first else None

    async def mark_gone(self, url: str) -> None:
        await self._run(self._redis.sadd(self._gone, url))

    async def is_gone(self, url: str) -> bool:
        return bool(await self._run(self._redis.sismember(self._gone, url)))

    async def retry(self, job_id: str, now: float) -> list[Delivery]:
        again = [d.again(now) for d in await self.of_job(job_id)]
        if again:
            async with self._redis.pipeline(transaction=True) as pipe:
                for d in again:
                    self._queue_save(pipe, d)
                pipe.srem(self._gone, *{d.url for d in again})
                await self._run(pipe.execute())
        return again

    async def purge_expired(self, now: float) -> int:
        return 0  # every key carries the retention as its TTL

    async def close(self) -> None:
        await self._redis.aclose()
