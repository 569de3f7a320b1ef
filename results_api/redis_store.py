"""The result store on Redis: one view shared by several API replicas.

Each job is one string key `<namespace>:job:<job_id>`: one digit, the job's rank, then
its event's JSON. One Lua script per apply call (one round trip) applies the
never-regress rule to the call's events atomically and in order, gives every changed
key the retention as its expiry, and publishes the changed ids on
`<namespace>:changes` in one message, so that the other replicas wake their waiters.
"""

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from inferq.retry import Backoff
from results_api.store import Encoded, StoreError, StoreUnavailable, redacted
from schemas import JobEvent
from schemas.status import TERMINAL_RANK, rank

log = logging.getLogger(__name__)

T = TypeVar("T")

RESUBSCRIBE = Backoff(first_s=0.1, max_s=5.0)

# KEYS: the jobs' keys in the order of the call. ARGV: expiry (ms), channel, origin, key
# prefix, then each key's new value (rank digit and JSON). Returns how many jobs changed.
_APPLY = f"""
local ttl, channel, origin, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local changed, seen = {{}}, {{}}
for i, key in ipairs(KEYS) do
    local value = ARGV[i + 4]
    local new = tonumber(string.sub(value, 1, 1))
    local old = tonumber(redis.call('GETRANGE', key, 0, 0))
    if old == nil or (old < {TERMINAL_RANK} and new >= old) then
        redis.call('SET', key, value, 'PX', ttl)
        if not seen[key] then
            seen[key] = true
            changed[#changed + 1] = string.sub(key, #prefix + 1)
        end
    end
end
if #changed > 0 then
    redis.call('PUBLISH', channel, cjson.encode({{origin = origin, jobs = changed}}))
end
return #changed
"""


class Changes(BaseModel):
    """One message on the channel: the jobs one apply call changed, and who applied it."""

    origin: str
    jobs: list[str]


async def guarded(where: str, call: Awaitable[T]) -> T:
    """`call`'s result; Redis errors as the store's: StoreUnavailable when it is out of reach."""
    try:
        return await call
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        raise StoreUnavailable(f"redis store {where}: {exc}") from exc
    except redis_errors.RedisError as exc:
        raise StoreError(f"redis store {where}: {exc}") from exc


class RedisStore:
    def __init__(self, url: str, *, retention_s: float, namespace: str) -> None:
        self._where = redacted(url)
        try:
            self._redis = Redis.from_url(url, client_name=f"inferq-{namespace}")
        except ValueError as exc:
            raise StoreError(f"store {self._where!r} is not a Redis URL: {exc}") from exc
        self._ttl_ms = max(1, round(retention_s * 1000))
        self._prefix = f"{namespace}:job:"
        self.channel = f"{namespace}:changes"
        self._origin = uuid.uuid4().hex  # this store's own changes are not news to it
        self._apply = self._redis.register_script(_APPLY)

    def key(self, job_id: str) -> str:
        return self._prefix + job_id

    async def _run(self, call: Awaitable[T]) -> T:
        return await guarded(self._where, call)

    async def apply(self, events: Iterable[JobEvent]) -> None:
        await self.apply_encoded(
            (e.job_id, e.status, e.model_dump_json(exclude_none=True).encode()) for e in events
        )

    async def apply_encoded(self, events: Iterable[Encoded], at: float | None = None) -> None:
        ttl_ms = self._ttl_ms if at is None else self._ttl_ms - round((time.time() - at) * 1000)
        keys: list[str] = []
        values: list[bytes] = []
        for job_id, status, doc in events:
            keys.append(self.key(job_id))
            values.append(b"%d" % rank(status) + doc)
        if keys and ttl_ms > 0:
            args: list[int | str | bytes] = [
                min(ttl_ms, self._ttl_ms),
                self.channel,
                self._origin,
                self._prefix,
                *values,
            ]
            await self._run(self._apply(keys=keys, args=args))

    async def get(self, job_id: str) -> JobEvent | None:
        value = await self._run(self._redis.get(self.key(job_id)))
        if value is None:
            return None
        try:
            return JobEvent.model_validate_json(value[1:])
        except ValidationError as exc:
            raise StoreError(f"the stored event of job {job_id!r} is not readable: {exc}") from exc

    async def purge_expired(self) -> int:
        """Nothing to do: every key expires by itself."""
        return 0

    async def watch(
        self, notify: Callable[[list[str]], None], resync: Callable[[], None], stop: asyncio.Event
    ) -> None:
        pauses = RESUBSCRIBE.pauses()
        while not stop.is_set():
            subscribed = asyncio.Event()
            try:
                await _until(stop, self._listen(notify, resync, subscribed))
            except (redis_errors.RedisError, OSError) as exc:
                if subscribed.is_set():
                    pauses = RESUBSCRIBE.pauses()  # it worked for a while: start over
                pause = next(pauses)
                log.warning(
                    "result store %s: lost the channel %s (%s); subscribing again in %.1f s",
                    self._where,
                    self.channel,
                    exc,
                    pause,
                )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await stop.wait()

    async def _listen(
        self,
        notify: Callable[[list[str]], None],
        resync: Callable[[], None],
        subscribed: asyncio.Event,
    ) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        async with contextlib.aclosing(pubsub):
            await pubsub.subscribe(self.channel)
            subscribed.set()
            resync()  # what was published while no one listened is lost: read again
            async for message in pubsub.listen():
                if message["type"] != "message":
                    continue
                try:
                    changes = Changes.model_validate_json(message["data"])
                except ValidationError as exc:
                    log.warning("result store: an unreadable message on %s: %s", self.channel, exc)
                    continue
                if changes.origin != self._origin:
                    notify(changes.jobs)
        raise redis_errors.ConnectionError("the subscription ended")

    async def ping(self) -> None:
        await self._run(self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()


async def _until(stop: asyncio.Event, work: Coroutine[Any, Any, None]) -> None:
    """Run `work` until it ends (its error raised here) or `stop` is set (it is cancelled)."""
    task = asyncio.create_task(work)
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        task.cancel()
        await asyncio.wait({task, stopped})
    if not task.cancelled():
        task.result()
