"""A real gateway process for the tests, and the providers' signing schemes from the sender side.

The gateway runs as `python -m dataflows.gateway` on a free 127.0.0.1 port, its output in a log
file the tests read (to prove no secret is ever printed). Signatures are made the way each
provider makes them: an ECDSA P-256 key of our own for SendGrid (the gateway gets its public key,
as SendGrid shows it: base64 DER), twilio's own `RequestValidator.compute_signature`, and the
documented HMACs for the rest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

from connectors.keys import Keys

ROOT = Path(__file__).resolve().parents[2]
KEYS = Keys()
_SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC_KEY = base64.b64encode(
    _SENDGRID_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()

SECRETS: dict[str, str] = {
    "TOUCHFLOW_GATEWAY_TOKEN": "tok-5ecret-first-party-0001",
    "TOUCHFLOW_SENDGRID_PUBLIC_KEY": SENDGRID_PUBLIC_KEY,
    "TOUCHFLOW_TWILIO_AUTH_TOKEN": "twilio-5ecret-auth-token-0002",
    # two SharedKey secrets: the one Twilio signs with, and the one being rotated out
    "TOUCHFLOW_TWILIO_SHARED_KEYS": "twilio-shared-5ecret-new-0008 twilio-shared-5ecret-old-0009",
    "TOUCHFLOW_MAILGUN_SIGNING_KEY": "key-mailgun-5ecret-0003",
    "TOUCHFLOW_POSTMARK_CREDENTIALS": "hookuser:postmark-5ecret-0004",
    "TOUCHFLOW_SEGMENT_SECRET": "segment-5ecret-0005",
    "TOUCHFLOW_CALENDLY_SIGNING_KEY": "calendly-5ecret-0006",
    "TOUCHFLOW_INTERCOM_CLIENT_SECRET": "intercom-5ecret-0007",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Gateway:
    """`python -m dataflows.gateway` as a child process; restartable on the same port/spool."""

    def __init__(
        self,
        redis_url: str,
        tmp: Path,
        *,
        secrets: Mapping[str, str] = SECRETS,
        config: str | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.spool = tmp / "spool"
        self.log = tmp / f"gateway-{self.port}.log"
        self.secrets = dict(secrets)
        self.config = tmp / "gateway.toml" if config is not None else None
        if self.config is not None and config is not None:
            self.config.write_text(config)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Gateway:
        args = [sys.executable, "-m", "dataflows.gateway", "--redis", self.redis_url]
        args += ["--port", str(self.port), "--spool-dir", str(self.spool)]
        args += ["--public-url", self.base]
        if self.config is not None:
            args += ["--config", str(self.config)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOUCHFLOW_")}
        env.pop("REDIS_URL", None)
        env.update(self.secrets)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                msg = f"gateway exited {self.proc.returncode}:\n{self.log.read_text()}"
                raise RuntimeError(msg)
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code in (200, 503):
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        msg = f"gateway did not answer:\n{self.log.read_text()}"
        raise RuntimeError(msg)

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def post(
        self, path: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        return httpx.post(
            f"{self.base}{path}", content=body, headers=dict(headers or {}), timeout=30
        )


# -- signing, as each provider does it --------------------------------------------------------


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS['TOUCHFLOW_GATEWAY_TOKEN']}"}


def sendgrid_headers(body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = _SENDGRID_KEY.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
    }


def twilio_request(
    gateway: Gateway,
    path: str,
    params: Mapping[str, str],
    query: Mapping[str, str] | None = None,
    *,
    shared: tuple[str, str, str] | None = None,
) -> tuple[str, bytes, dict[str, str]]:
    """(path with query, form body, headers) signed over the public URL + sorted params: with
    the Auth Token, or with `shared` = (key id, SharedKey secret, algorithm) as a Webhook Rule
    makes Twilio sign, naming the key and algorithm in `X-Twilio-Webhooks-Signature-Settings`."""
    full = path + (f"?{urllib.parse.urlencode(query)}" if query else "")
    secret, algorithm = SECRETS["TOUCHFLOW_TWILIO_AUTH_TOKEN"], None
    if shared is not None:
        _key_id, secret, algorithm = shared
    signature = RequestValidator(secret).compute_signature(
        gateway.base + full, dict(params), algorithm
    )
    body = urllib.parse.urlencode(list(params.items())).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature,
    }
    if shared is not None:
        headers["X-Twilio-Webhooks-Signature-Settings"] = f"key={shared[0]},algorithm={algorithm}"
    return full, body, headers


def mailgun_body(
    payload: dict[str, Any], *, timestamp: int | None = None, key: str | None = None
) -> bytes:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    token = hashlib.sha256(orjson.dumps(payload["event-data"])).hexdigest()[:50]
    secret = (key or SECRETS["TOUCHFLOW_MAILGUN_SIGNING_KEY"]).encode()
    signature = hmac.new(secret, (stamp + token).encode(), hashlib.sha256).hexdigest()
    signed = dict(payload, signature={"timestamp": stamp, "token": token, "signature": signature})
    return orjson.dumps(signed)


def postmark_headers(credentials: str | None = None) -> dict[str, str]:
    pair = credentials or SECRETS["TOUCHFLOW_POSTMARK_CREDENTIALS"]
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def segment_headers(body: bytes, secret: str | None = None) -> dict[str, str]:
    key = (secret or SECRETS["TOUCHFLOW_SEGMENT_SECRET"]).encode()
    return {"X-Signature": hmac.new(key, body, hashlib.sha1).hexdigest()}


def calendly_headers(
    body: bytes, *, timestamp: int | None = None, key: str | None = None
) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    secret = (key or SECRETS["TOUCHFLOW_CALENDLY_SIGNING_KEY"]).encode()
    digest = hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"Calendly-Webhook-Signature": f"t={stamp},v1={digest}"}


def intercom_headers(body: bytes, secret: str | None = None) -> dict[str, str]:
    key = (secret or SECRETS["TOUCHFLOW_INTERCOM_CLIENT_SECRET"]).encode()
    return {"X-Hub-Signature": "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest()}


# -- reading what landed ----------------------------------------------------------------------


def stream_events(client: redis.Redis, keys: Keys = KEYS) -> list[dict[str, Any]]:
    """Every event on every shard stream, each checked to sit on its prospect's shard."""
    from connectors.keys import shard_of

    events = []
    for shard in range(keys.shards):
        for _entry, fields in client.xrange(keys.events(shard)):  # type: ignore[union-attr]
            event = orjson.loads(fields[b"event"])
            assert shard_of(event["prospect"], keys.shards) == shard
            events.append(event)
    return events


def dead_letters(client: redis.Redis, keys: Keys = KEYS) -> list[dict[str, bytes]]:
    entries = client.xrange(keys.dead)  # type: ignore[union-attr]
    return [{k.decode(): v for k, v in fields.items()} for _entry, fields in entries]
