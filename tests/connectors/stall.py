"""Make a real Redis stop answering for a while, the way a long command or a stalled host does."""

import redis


def debug_sleep(url: str, seconds: float) -> None:
    """Block the server at `url` for `seconds` (DEBUG SLEEP); returns when it answers again."""
    r = redis.Redis.from_url(url)
    try:
        r.execute_command("DEBUG", "SLEEP", str(seconds))
    finally:
        r.close()
