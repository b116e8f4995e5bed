"""First-party events (`POST /v1/events`): one contract event, a JSON array of them, or JSON Lines.

Split only: each event is then read by touchflow's own reader (`operators.intake.EventReader`),
so the gateway rejects exactly what the flow would, for the same reasons, one event at a time.
"""

from typing import Final

import orjson

from operators.providers.common import NotProviderFormatError

_BOM: Final = b"\xef\xbb\xbf"


def split_events(body: bytes) -> list[bytes]:
    """The raw bytes of each event in the body.

    A body that parses as one JSON value is one event (an object) or several (an array); else it
    is JSON Lines, one event per non-blank line. NotProviderFormatError when no part of it is
    JSON at all (the whole body is dead-lettered by the caller).
    """
    text = body[len(_BOM) :] if body.startswith(_BOM) else body
    try:
        whole = orjson.loads(text)
    except orjson.JSONDecodeError:
        whole = None
    else:
        if isinstance(whole, list):
            return [orjson.dumps(item) for item in whole]
        return [text.strip()]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not any(_is_json(line) for line in lines):
        msg = "not contract events: neither a JSON value nor JSON Lines"
        raise NotProviderFormatError(msg)
    return lines


def _is_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True
