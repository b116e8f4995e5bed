"""A simulated sender: reads the command streams as a real one would, answers like a provider.

It is the other side of CONTRACT.md section 6 for `touchflow demo` and the tests. Each channel's
command stream is read by its own consumer group (`<prefix>-sender-<channel>`), with XREADGROUP:
first the entries this consumer was given but never acknowledged (after a restart), then new ones.
What each command gets is `answers.plan`'s; this module only schedules the answers and carries
them when due.

A wire carries the answers (`wire.Wire`). With a gateway (`--gateway URL`, what `touchflow demo`
does), each answer travels as the provider that carries its channel would post it, signed as it
signs (`callbacks`, `gateway_wire`), so the path is provider → gateway → flow. Without one,
answers are appended to the event streams as contract events, as a sender with its own provider
glue would (`RedisWire`). A command is acknowledged (XACK) once its first answer (`touch_sent` or
`touch_failed`) is carried: appended, or taken by the gateway (2xx). Answers the gateway did not
take go again later, in order, with backoff. Handoffs (channel `rep`) are acknowledged, never
answered.
"""

import argparse
import copy
import heapq
import logging
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, NamedTuple

import orjson
import redis
from redis.exceptions import ConnectionError, TimeoutError

from connectors.keys import OUT_CHANNELS, Keys, shard_of
from connectors.redis_source import ensure_group
from dataflows.demo.answers import CONFIRM_ONLY, Behaviour, plan
from dataflows.demo.callbacks import contacts_from_lines
from dataflows.demo.gateway_wire import CallbackSecrets, GatewayWire, write_secrets
from dataflows.demo.wire import Delivery, EventDict, Outbound, Wire
from operators.timeutil import format_ts

log = logging.getLogger(__name__)


def group_name(keys: Keys, channel: str) -> str:
    """The sender's consumer group on one channel's command stream."""
    return f"{keys.prefix}-sender-{channel}"


class RedisWire:
    """Answers appended to the event streams as contract events, in one pipeline: a sender with
    its own provider glue, and no gateway in between."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._r: Any = client
        self._keys = keys

    def send(self, answers: Sequence[Outbound], now: float) -> Delivery:
        pipe = self._r.pipeline(transaction=False)
        for out in answers:
            stream = self._keys.events(shard_of(out.prospect, self._keys.shards))
            pipe.xadd(stream, {"event": orjson.dumps(out.event)})
        pipe.execute()
        return Delivery(len(answers), Counter({("redis", "ok"): 1}))

    def close(self) -> None:
        """The client is the sender's caller's."""


@dataclass
class SenderCounts:
    """What the sender did so far; `SenderStats.snapshot` hands out copies."""

    commands: Counter[str] = field(default_factory=Counter)  # read, by channel
    answers: Counter[str] = field(default_factory=Counter)  # carried, by event type
    acked: int = 0
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)  # (endpoint, status)
    retried: int = 0  # answers put back for a later round (the gateway did not take them)


class SenderStats:
    """Counters the demo's live display reads from another thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = SenderCounts()

    def count(
        self,
        commands: Counter[str] | None = None,
        answers: Counter[str] | None = None,
        acked: int = 0,
        requests: Counter[tuple[str, str]] | None = None,
        retried: int = 0,
    ) -> None:
        with self._lock:
            c = self._counts
            c.commands.update(commands or {})
            c.answers.update(answers or {})
            c.requests.update(requests or {})
            c.acked += acked
            c.retried += retried

    def snapshot(self) -> SenderCounts:
        with self._lock:
            return copy.deepcopy(self._counts)


class _Planned(NamedTuple):
    """A scheduled answer: its command, the event without `ts`, the command entry it acks."""

    command: str
    event: EventDict
    ack: tuple[str, bytes] | None


# (due time, sequence, answer): the sequence keeps answers due at one instant in plan order.
_Item = tuple[float, int, _Planned]
_RETRY_FIRST_S: Final = 0.25
_RETRY_MAX_S: Final = 5.0


class Sender:
    """Reads commands (one consumer group per channel) and carries answers when they are due.

    The client is the caller's (and closed by the caller); `close` closes the wire. `wire`
    defaults to appending contract events to Redis (`RedisWire`). `plain` names prospects that
    get only a `touch_sent`. `clock` gives wall-clock seconds; answers carry it as their `ts`.
    `log_to` gets each answer carried, as a contract event line.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        seed: int = 0,
        behaviour: Behaviour | None = None,
        plain: Collection[str] = (),
        consumer: str = "sender-1",
        channels: Sequence[str] = OUT_CHANNELS,
        batch: int = 256,
        wire: Wire | None = None,
        log_to: IO[bytes] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        unknown = set(channels) - set(OUT_CHANNELS)
        if unknown or batch < 1:
            msg = f"sender: unknown channels {sorted(unknown)} or batch {batch} < 1"
            raise ValueError(msg)
        self._r: Any = client
        self._keys = keys
        self._seed = seed
        self._behaviour = behaviour or Behaviour()
        self._plain = frozenset(plain)
        self._consumer = consumer
        self._channels = tuple(channels)
        self._batch = batch
        self._wire: Wire = wire if wire is not None else RedisWire(client, keys)
        self._log = log_to
        self._clock = clock
        self._queue: list[_Item] = []
        self._seq = 0
        self._retry_s = _RETRY_FIRST_S
        # Own pending entries first (cursor), then new ones (None: read ">").
        self._cursor: dict[str, bytes | None] = dict.fromkeys(self._channels, b"0")
        self.stats = SenderStats()
        for channel in self._channels:
            ensure_group(client, keys.commands(channel), group_name(keys, channel))

    @property
    def scheduled(self) -> int:
        """Answers planned (or put back) but not yet carried."""
        return len(self._queue)

    def next_due(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def poll(self) -> int:
        """Read the commands waiting on every channel, plan their answers; returns how many."""
        now = self._clock()
        read: Counter[str] = Counter()
        acks: list[tuple[str, bytes]] = []
        caught_up = []  # channels whose backlog just ran out read their new entries at once
        for channel, entries in self._read(self._channels):
            if self._cursor[channel] is not None:
                self._cursor[channel] = entries[-1][0] if entries else None
                if not entries:
                    caught_up.append(channel)
            self._take(channel, entries, now, read, acks)
        for channel, entries in self._read(caught_up):
            self._take(channel, entries, now, read, acks)
        if acks:
            self._ack(acks)
        self.stats.count(commands=read, acked=len(acks))
        return read.total()

    def _read(self, channels: Sequence[str]) -> list[tuple[str, list[tuple[bytes, Any]]]]:
        """One XREADGROUP per channel, pipelined: own pending entries (cursor), else new ones."""
        if not channels:
            return []
        pipe = self._r.pipeline(transaction=False)
        for channel in channels:
            cursor = self._cursor[channel]
            pipe.xreadgroup(
                group_name(self._keys, channel),
                self._consumer,
                {self._keys.commands(channel): cursor if cursor is not None else ">"},
                count=self._batch,
            )
        replies = pipe.execute()
        return [
            (channel, list(reply[0][1]) if reply else [])
            for channel, reply in zip(channels, replies, strict=True)
        ]

    def _take(
        self,
        channel: str,
        entries: list[tuple[bytes, Any]],
        now: float,
        read: Counter[str],
        acks: list[tuple[str, bytes]],
    ) -> None:
        for entry_id, fields in entries:
            read[channel] += 1
            ack = (channel, entry_id)
            raw = fields.get(b"command", b"") if fields else b""  # None: deleted while pending
            if not self._schedule(now, raw, ack):
                acks.append(ack)  # a handoff or an unreadable entry: nothing to carry out

    def _schedule(self, now: float, raw: bytes, ack: tuple[str, bytes]) -> bool:
        try:
            command = orjson.loads(raw)
            prospect = command["prospect"]
            behaviour = CONFIRM_ONLY if prospect in self._plain else self._behaviour
            answers = plan(command, seed=self._seed, behaviour=behaviour)
            cid = str(command["id"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            log.warning("sender: unreadable command entry %s: %s", ack[1], exc)
            return False
        for n, (delay, event) in enumerate(answers):
            self._seq += 1
            planned = _Planned(cid, event, ack if n == 0 else None)
            heapq.heappush(self._queue, (now + delay, self._seq, planned))
        return bool(answers)

    def _ack(self, acks: list[tuple[str, bytes]]) -> None:
        pipe = self._r.pipeline(transaction=False)
        for channel, entry_id in acks:
            pipe.xack(self._keys.commands(channel), group_name(self._keys, channel), entry_id)
        pipe.execute()

    def flush(self) -> int:
        """Carry every answer that is due; acknowledge the commands carried out. Answers the
        wire did not carry go back in the queue, in order, for a later round (with backoff)."""
        now = self._clock()
        queue = self._queue
        if not queue or queue[0][0] > now:
            return 0
        due: list[_Item] = []
        while queue and queue[0][0] <= now:
            due.append(heapq.heappop(queue))
        ts = format_ts(int(now * 1000))
        blank: EventDict = {"id": "", "type": "", "prospect": "", "ts": ts}
        answers = [Outbound(p.command, blank | p.event) for _, _, p in due]
        try:
            delivery = self._wire.send(answers, now)
        except BaseException:
            self._put_back(due, now)
            raise
        done = delivery.done
        if done < len(due):
            self._put_back(due[done:], now)
        else:
            self._retry_s = _RETRY_FIRST_S
        acks = [p.ack for _, _, p in due[:done] if p.ack is not None]
        if acks:
            self._ack(acks)
        if self._log is not None:
            self._log.writelines(orjson.dumps(out.event) + b"\n" for out in answers[:done])
        carried = Counter(str(out.event["type"]) for out in answers[:done])
        self.stats.count(
            answers=carried, acked=len(acks), requests=delivery.requests, retried=len(due) - done
        )
        return done

    def _put_back(self, items: list[_Item], now: float) -> None:
        """Due again after the backoff, keeping their sequence (so their order)."""
        for _due, seq, planned in items:
            heapq.heappush(self._queue, (now + self._retry_s, seq, planned))
        self._retry_s = min(_RETRY_MAX_S, self._retry_s * 2)

    def step(self) -> int:
        """One round: read new commands, carry what is due; returns answers carried."""
        self.poll()
        return self.flush()

    def run(self, stop: threading.Event, interval: float = 0.02) -> None:
        """Step until `stop` is set; a Redis hiccup is waited out, never fatal."""
        backoff = interval
        while not stop.is_set():
            try:
                self.step()
                backoff = interval
            except (ConnectionError, TimeoutError, OSError) as exc:
                log.warning("sender: Redis unavailable (%s); retrying", exc)
                backoff = min(2.0, backoff * 2)
            due = self.next_due()
            wait = backoff if due is None else min(backoff, max(0.0, due - self._clock()))
            stop.wait(wait)

    def close(self) -> None:
        """Close the wire (the Redis client is the caller's)."""
        self._wire.close()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m dataflows.demo.sender --redis URL [--gateway URL]`: answer a live flow's commands
    until Ctrl-C; `--new-secrets FILE` writes secrets for a gateway and this sender, and exits."""
    parser = argparse.ArgumentParser(prog="python -m dataflows.demo.sender", description=__doc__)
    parser.add_argument("--redis", metavar="URL", help="the flow's Redis (commands are read here)")
    parser.add_argument("--config", default=None, help="policy TOML, for the key prefix/shards")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--gateway",
        metavar="URL",
        help="post provider-shaped, signed callbacks to this touchflow gateway instead of "
        "appending events to Redis; secrets from TOUCHFLOW_GATEWAY_TOKEN, "
        "TOUCHFLOW_TWILIO_AUTH_TOKEN and TOUCHFLOW_SENDER_SENDGRID_KEY",
    )
    parser.add_argument(
        "--public-url", metavar="URL", help="the gateway's --public-url (Twilio signs that URL)"
    )
    parser.add_argument(
        "--profiles",
        type=Path,
        metavar="EVENTS.jsonl",
        help="events whose profiles give each prospect's email and phone (an sms reply comes "
        "From that phone; without one it goes to /v1/events)",
    )
    parser.add_argument(
        "--new-secrets",
        type=Path,
        metavar="FILE",
        help="write fresh secrets for a gateway and this sender to FILE (mode 600), then exit",
    )
    args = parser.parse_args(argv)
    from dataflows.live import keys_for
    from operators.policy import load_policy

    prog = "python -m dataflows.demo.sender"
    if args.new_secrets is not None:
        try:
            write_secrets(args.new_secrets, CallbackSecrets.generate())
        except OSError as exc:
            print(f"{prog}: cannot write {args.new_secrets}: {exc.strerror}", file=sys.stderr)
            return 2
        print(f"{prog}: wrote {args.new_secrets}; load it with: set -a; . {args.new_secrets}")
        return 0
    if args.redis is None:
        parser.error("--redis is required")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    wire: Wire | None = None
    if args.gateway is not None:
        try:
            secrets = CallbackSecrets.from_env()
            lines = args.profiles.read_bytes().splitlines() if args.profiles else []
            contacts = contacts_from_lines(lines)
            wire = GatewayWire(args.gateway, secrets, contacts=contacts, public_url=args.public_url)
        except ValueError as exc:  # its message names the step: "sender: ..."
            print(exc, file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"sender: cannot read {args.profiles}: {exc.strerror}", file=sys.stderr)
            return 2
    client = redis.Redis.from_url(args.redis)
    sender = Sender(client, keys_for(load_policy(args.config)), seed=args.seed, wire=wire)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())  # as Ctrl-C: counts, close
    try:
        sender.run(stop)
    except KeyboardInterrupt:
        pass
    finally:
        sender.close()
        client.close()
        counts = sender.stats.snapshot()
        log.info(
            "sender: %d commands read, answers %s, requests %s",
            counts.commands.total(),
            dict(counts.answers),
            {f"{endpoint} {status}": n for (endpoint, status), n in counts.requests.items()},
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
