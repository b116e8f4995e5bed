"""Make a real Redis stop answering for a while, the way a long command or a stalled host does."""

import threading
import time

import redis


def stalled(url: str, seconds: float) -> threading.Thread:
    """Block the server at `url` for `seconds` (DEBUG SLEEP on a thread); returns the thread
    (join it) once a probe has seen the server stop answering, so callers never race the sleep."""
    sleeper = threading.Thread(target=_debug_sleep, args=(url, seconds))
    sleeper.start()
    probe = redis.Redis.from_url(url, socket_timeout=0.05)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                probe.ping()
            except redis.TimeoutError:
                return sleeper
            time.sleep(0.01)
    finally:
        probe.close()
    sleeper.join()
    msg = "Redis kept answering: DEBUG SLEEP did not stall it"
    raise AssertionError(msg)


def _debug_sleep(url: str, seconds: float) -> None:
    r = redis.Redis.from_url(url)
    try:
        r.execute_command("DEBUG", "SLEEP", str(seconds))
    finally:
        r.close()
