"""The whole path: provider → gateway → live flow (a real `touchflow run`) → state.

The issue's story: "the STOP reached Twilio but never reached the engine". A STOP from a
number no profile holds yet is parked by the gateway; once the flow processes a `profile` with
that number, the flow indexes it and the STOP is appended by itself and applied: the prospect
is opted out of sms, and a proposal view afterwards sends no text.
"""

import time
from pathlib import Path

import msgspec
import pytest
import redis

from connectors.keys import Keys
from operators.events import CHANNEL_INDEX
from operators.state import decode_state
from tests.conftest import TEST_DB, _with_db
from tests.dataflows import live_harness as lh
from tests.gateway import harness as h
from tests.gateway import samples
from tests.gateway.harness import Gateway

pytestmark = [pytest.mark.redis, pytest.mark.slow]
KEYS = Keys()  # the gateway harness runs with the default prefix and shards


def test_a_stop_from_an_unknown_number_lands_once_its_profile_is_processed(
    gateway: Gateway, redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    stop = samples.twilio_inbound(Body="STOP", OptOutType="STOP", From="+14155550199")
    path, body, headers = h.twilio_request(gateway, "/v1/hooks/twilio/messages", stop)
    assert gateway.post(path, body, headers).status_code == 200
    config = tmp_path / "flow.toml"
    config.write_text("[requests]\narbitration_seconds = 0\n")
    proc = lh.start_run(_with_db(redis_url, TEST_DB), config, log=tmp_path / "run.log")
    try:
        now = time.time_ns() // 1_000_000
        lh.publish(
            redis_client,
            KEYS,
            [
                {"id": "prof", "type": "profile", "prospect": "ann", "phone": "+14155550199"}
                | {"ts": _ts(now - 60_000), "timezone": "UTC"},
                {"id": "c", "type": "consent", "prospect": "ann", "channel": "sms"}
                | {"granted": True, "ts": _ts(now - 60_000)},
            ],
        )
        deadline = time.monotonic() + 30
        while not _opted_out(redis_client, "ann"):
            assert time.monotonic() < deadline, "the parked STOP never reached the flow"
            time.sleep(0.2)
    finally:
        assert lh.stop(proc) == 0
    appended = [
        msgspec.json.decode(f[b"event"])
        for s in range(KEYS.shards)
        for _i, f in redis_client.xrange(KEYS.events(s))
    ]
    redriven = [e for e in appended if e["prospect"] == "ann" and e["type"] == "opt_out"]
    assert len(redriven) == 1, "the STOP is appended once, by itself"


def _ts(ms: int) -> str:
    from operators.timeutil import format_ts

    return format_ts(ms)


def _opted_out(r: redis.Redis, prospect: str) -> bool:
    data = r.get(KEYS.state(prospect))
    if data is None:
        return False
    state = decode_state(data)
    return bool(state.opted_out & (1 << CHANNEL_INDEX["sms"]))
