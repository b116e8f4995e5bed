"""Benchmark of the ingestion gateway: signed provider requests through a real server to Redis.

Starts its own Redis (embedded) and a gateway process whose app has one extra route, `/noop`,
that answers at once: the ceiling of uvicorn + Starlette on this box, measured in the same run.
The gateway's endpoints do not go through Starlette's routing (`connectors/gateway_http.py`);
a second no-op, `/noop-front`, is answered by the same front as they are, so the ratio against
that (`ratio_front`: the share of a bare uvicorn request the gateway's own work leaves) is shown
too.
This process is the load: a small keep-alive HTTP/1.1 client on asyncio over 127.0.0.1 only,
bounded in count and time. Measured:

- SendGrid batches of 100 signed events (ECDSA), as fast as they go (concurrency 8);
- single Twilio form posts (signed), as fast as they go, and the no-op route the same way, in
  `--rounds` interleaved rounds (21) of `--requests` (3,000) each, over `--connections`
  keep-alive connections (64: providers post concurrently; with 16, the Twilio server idled
  5-10 % of the time waiting for the Redis call that held every connection's request, which
  is the client's limit, not the server's);
- p99 latency of single Twilio posts paced at 500 requests/s.

Every request is a different provider event (its own `MessageSid`, its own `sg_event_id`s),
signed before the clock starts: a repeated one would be found by the gateway's dedupe marker
and appended nothing, which flatters the rate.

Prints `{"sendgrid_events_per_s", "twilio_requests_per_s", "noop_requests_per_s", "ratio",
"p99_ms_at_500_rps"}` with `--json`. `ratio` is twilio / noop of each round (a Twilio round
and the no-op round next to it: after it in even rounds, before it in odd ones, so neither side
always goes first), median over the rounds: this shared box's speed drifts by half within a
run (a no-op round at 13k, the next at 21k requests/s), and rounds next to each other in time
drift least; `ratio_of_medians` (median twilio / median noop) is shown too, and `ratio_front`
the same way as `ratio`; `steal_pct_rounds` (the share of the cores' time the hypervisor gave
other guests during the rounds) says how noisy they were. Every round's connections are opened
and warmed (one `GET /healthz` each) before its clock starts, and closed after it stops.
Targets (issue 13): >= 20,000 SendGrid events/s; ratio >= 0.5; p99 <= 15 ms at 500
requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import cpu_ticks, machine, median, print_json, steal_pct  # noqa: E402

WARMUP = 300
PACED_RPS = 500
PACED_S = 4.0


def gateway_events(redis_url: str) -> int:
    """Entries the gateway appended to the event streams (each request's event, once)."""
    import redis

    from connectors.keys import Keys

    r = redis.Redis.from_url(redis_url)
    keys = Keys()
    try:
        return sum(int(r.xlen(keys.events(shard))) for shard in range(keys.shards))
    finally:
        r.close()


def serve(redis_url: str, port: int, spool: str) -> None:
    """The server process: the gateway app plus `/noop`."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route
    from starlette.types import Receive

    from connectors.gateway_http import Answer, Incoming, read_body
    from dataflows.gateway import GatewaySettings, build_app, secrets_from_env
    from operators.providers.config import GatewayConfig

    settings = GatewaySettings(
        redis_url=redis_url,
        port=port,
        gateway=GatewayConfig(spool_dir=spool, public_url=f"http://127.0.0.1:{port}"),
        secrets=secrets_from_env(),
    )
    app = build_app(settings)

    async def noop(request: Request) -> Response:
        await request.body()
        return Response(b"ok")

    async def noop_front(incoming: Incoming, receive: Receive) -> Answer:
        await read_body(incoming.headers, receive, 1 << 20)
        return Answer(200, b"ok", "text/plain")

    starlette = app.fallback
    assert isinstance(starlette, Starlette)
    starlette.router.routes.append(Route("/noop", noop, methods=["POST"]))
    app.handlers["/noop-front"] = noop_front
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


class Conn:
    """One keep-alive HTTP/1.1 connection (just enough client for a benchmark)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        self.writer.write(head.encode() + body)
        return await self._answer()

    async def warm(self) -> None:
        """One `GET /healthz`: the server has accepted and set up this connection before the
        clock starts (at 64 connections, about a tenth of a short round otherwise)."""
        self.writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await self._answer()

    async def _answer(self) -> int:
        """Read one response whole; its status."""
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


async def blast(port: int, make: Any, count: int, concurrency: int) -> float:
    """Send `count` requests from `make(i)` over `concurrency` connections; requests/s. The
    connections are opened and warmed before the clock starts and closed after it stops, so a
    round pays for its requests only."""
    conns = [await Conn.open(port) for _ in range(concurrency)]
    await asyncio.gather(*(c.warm() for c in conns))
    next_i = 0

    async def worker(conn: Conn) -> None:
        nonlocal next_i
        while next_i < count:
            i = next_i
            next_i += 1
            path, body, headers = make(i)
            status = await conn.post(path, body, headers)
            assert status == 200, status

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - start
    for c in conns:
        c.writer.close()
    await asyncio.gather(*(c.writer.wait_closed() for c in conns))
    return count / elapsed


async def paced(port: int, make: Any, rate: float, seconds: float) -> list[float]:
    """Latencies (s) of requests started at `rate` per second for `seconds`."""
    pool = [await Conn.open(port) for _ in range(32)]
    idle = list(pool)
    latencies: list[float] = []

    async def one(i: int) -> None:
        conn = idle.pop() if idle else await Conn.open(port)
        path, body, headers = make(i)
        start = time.perf_counter()
        await conn.post(path, body, headers)
        latencies.append(time.perf_counter() - start)
        idle.append(conn)

    tasks = []
    begin = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = begin + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=21, help="interleaved rounds (median kept)")
    parser.add_argument("--requests", type=int, default=3_000, help="requests per round")
    parser.add_argument("--connections", type=int, default=64, help="for the Twilio/no-op rounds")
    parser.add_argument("--sendgrid-batches", type=int, default=200)
    parser.add_argument(
        "--serve", nargs=3, metavar=("REDIS", "PORT", "SPOOL"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.serve[2])
        return 0
    from connectors.redis_server import EmbeddedRedis
    from tests.gateway import harness as h
    from tests.gateway import samples

    with EmbeddedRedis() as server, tempfile.TemporaryDirectory() as tmp:
        port = h.free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, **h.SECRETS}
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", server.url, str(port), f"{tmp}/spool"],
            env=env,
            cwd=ROOT,
        )
        try:
            gateway = h.Gateway(server.url, Path(tmp))
            gateway.port, gateway.base = port, base
            import httpx

            deadline = time.monotonic() + 20
            while True:
                try:
                    httpx.get(base + "/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "server did not start"
                    time.sleep(0.05)
            batches = []
            for b in range(args.sendgrid_batches):
                items = [samples.sendgrid("delivered", n=b * 100 + i, touchflow_prospect=f"p{i}")
                         for i in range(100)]  # fmt: skip
                body = orjson.dumps(items)
                batches.append(body)
            signed_batches = [(b, h.sendgrid_headers(b)) for b in batches]

            def sendgrid(i: int) -> tuple[str, bytes, dict[str, str]]:
                body, headers = signed_batches[i]
                return "/v1/hooks/sendgrid", body, headers

            # warm-up, the rounds, then the paced run: each request once
            paced_count = int(PACED_RPS * PACED_S)
            total = WARMUP + args.rounds * args.requests + paced_count
            signed = [
                h.twilio_request(
                    gateway,
                    "/v1/hooks/twilio/status",
                    samples.twilio_status("delivered", MessageSid=f"SM{i:032d}"),
                    {"prospect": f"p{i % 5000}"},
                )
                for i in range(total)
            ]
            offset = 0
            # The ~50,000 signed requests live until the end: out of the collector's scans, so
            # a full collection in this process does not stall the load (and the p99 it times).
            gc.collect()
            gc.freeze()

            def twilio(i: int) -> tuple[str, bytes, dict[str, str]]:
                return signed[offset + i]

            def noop(i: int) -> tuple[str, bytes, dict[str, str]]:
                _path, body, headers = signed[i % len(signed)]
                return "/noop", body, headers

            def noop_front(i: int) -> tuple[str, bytes, dict[str, str]]:
                _path, body, headers = signed[i % len(signed)]
                return "/noop-front", body, headers

            asyncio.run(blast(port, twilio, WARMUP, 8))
            offset += WARMUP
            asyncio.run(blast(port, noop, WARMUP, 8))
            asyncio.run(blast(port, noop_front, WARMUP, 8))
            sg_rps = asyncio.run(blast(port, sendgrid, len(signed_batches), 8))
            tw, no, nf = [], [], []
            sides = {"twilio": (twilio, tw), "noop": (noop, no), "front": (noop_front, nf)}
            ticks = cpu_ticks()
            for r in range(args.rounds):  # interleaved, ABBA: no side always goes first
                for side in (
                    ("twilio", "noop", "front") if r % 2 == 0 else ("front", "noop", "twilio")
                ):
                    make, rates = sides[side]
                    rates.append(asyncio.run(blast(port, make, args.requests, args.connections)))
                    if side == "twilio":
                        offset += args.requests  # every Twilio request is sent once
            steal = steal_pct(ticks, cpu_ticks())
            appended = gateway_events(server.url)
            sent = WARMUP + args.rounds * args.requests + 100 * len(signed_batches)
            assert appended == sent, f"{appended} events appended for {sent} sent"
            latencies = sorted(asyncio.run(paced(port, twilio, PACED_RPS, PACED_S)))
            p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    twilio_rps, noop_rps, front_rps = median(tw), median(no), median(nf)
    result = {
        "sendgrid_events_per_s": round(sg_rps * 100),
        "twilio_requests_per_s": round(twilio_rps),
        "noop_requests_per_s": round(noop_rps),
        "ratio": round(median([t / n for t, n in zip(tw, no, strict=True)]), 3),
        "ratio_of_medians": round(twilio_rps / noop_rps, 3),
        "p99_ms_at_500_rps": round(p99, 2),
        "noop_front_requests_per_s": round(front_rps),
        "ratio_front": round(median([t / f for t, f in zip(tw, nf, strict=True)]), 3),
        "ratio_rounds": [round(t / n, 3) for t, n in zip(tw, no, strict=True)],
        "events_appended": appended,
        "requests_per_round": args.requests,
        "connections": args.connections,
        "steal_pct_rounds": steal,
    }
    if args.json:
        print_json({**result, "machine": machine()})
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
