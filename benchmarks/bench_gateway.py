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
- single Twilio form posts (signed), as fast as they go, and the no-op route the same way;
- p99 latency of single Twilio posts paced at 500 requests/s.

Prints `{"sendgrid_events_per_s", "twilio_requests_per_s", "noop_requests_per_s", "ratio",
"p99_ms_at_500_rps"}` with `--json` (ratio = twilio / noop). Targets (issue 13): >= 20,000
SendGrid events/s; ratio >= 0.5; p99 <= 15 ms at 500 requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
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

from benchmarks._common import machine, print_json  # noqa: E402


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
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


async def blast(port: int, make: Any, count: int, concurrency: int) -> float:
    """Send `count` requests from `make(i)` over `concurrency` connections; requests/s."""
    conns = [await Conn.open(port) for _ in range(concurrency)]
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
        tasks.append(asyncio.create_task(one(1_000_000 + i)))
    await asyncio.gather(*tasks)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
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
            for b in range(20):
                items = [samples.sendgrid("delivered", n=b * 100 + i, touchflow_prospect=f"p{i}")
                         for i in range(100)]  # fmt: skip
                body = orjson.dumps(items)
                batches.append(body)

            def sendgrid(i: int) -> tuple[str, bytes, dict[str, str]]:
                body = batches[i % len(batches)]
                return "/v1/hooks/sendgrid", body, h.sendgrid_headers(body)

            signed = [
                h.twilio_request(
                    gateway,
                    "/v1/hooks/twilio/status",
                    samples.twilio_status("delivered", MessageSid=f"SM{i:032d}"),
                    {"prospect": f"p{i % 50}"},
                )
                for i in range(500)
            ]

            def twilio(i: int) -> tuple[str, bytes, dict[str, str]]:
                return signed[i % len(signed)]

            def noop(i: int) -> tuple[str, bytes, dict[str, str]]:
                _path, body, headers = signed[i % len(signed)]
                return "/noop", body, headers

            def noop_front(i: int) -> tuple[str, bytes, dict[str, str]]:
                _path, body, headers = signed[i % len(signed)]
                return "/noop-front", body, headers

            asyncio.run(blast(port, twilio, 300, 8))  # warm-up
            asyncio.run(blast(port, noop, 300, 8))
            asyncio.run(blast(port, noop_front, 300, 8))
            sg_rps = asyncio.run(blast(port, sendgrid, 200, 8))
            tw, no, nf = [], [], []
            for _ in range(3):  # interleaved, median kept
                tw.append(asyncio.run(blast(port, twilio, 1500, 16)))
                no.append(asyncio.run(blast(port, noop, 1500, 16)))
                nf.append(asyncio.run(blast(port, noop_front, 1500, 16)))
            latencies = sorted(asyncio.run(paced(port, twilio, 500, 4.0)))
            p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    tw.sort()
    no.sort()
    nf.sort()
    result = {
        "sendgrid_events_per_s": round(sg_rps * 100),
        "twilio_requests_per_s": round(tw[1]),
        "noop_requests_per_s": round(no[1]),
        "ratio": round(tw[1] / no[1], 3),
        "p99_ms_at_500_rps": round(p99, 2),
        "noop_front_requests_per_s": round(nf[1]),
        "ratio_front": round(tw[1] / nf[1], 3),
    }
    if args.json:
        print_json({**result, "machine": machine()})
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
