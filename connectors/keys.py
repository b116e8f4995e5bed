"""Redis key names (CONTRACT.md section 6) and the shard formula producers must use."""

import zlib
from typing import Annotated, Final

import orjson
from msgspec import Meta, Struct

OUT_CHANNELS: Final = ("email", "sms", "phone", "chat", "linkedin", "rep")


def shard_of(prospect: str, shards: int) -> int:
    """`zlib.crc32(prospect.encode()) % shards`: stable across processes, unlike `hash()`."""
    return zlib.crc32(prospect.encode()) % shards


def prospect_of(raw: bytes) -> str | None:
    """The `prospect` of a raw event line, or None when the line has no readable one."""
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    prospect = event.get("prospect") if isinstance(event, dict) else None
    return prospect if isinstance(prospect, str) else None


class Keys(Struct, frozen=True):
    """Every key touchflow reads or writes, under one prefix."""

    prefix: Annotated[str, Meta(min_length=1)] = "touchflow"
    shards: Annotated[int, Meta(ge=1, le=1024)] = 4

    def events(self, shard: int) -> str:
        return f"{self.prefix}:events:{shard}"

    def commands(self, channel: str) -> str:
        return f"{self.prefix}:commands:{channel}"

    @property
    def decisions(self) -> str:
        return f"{self.prefix}:decisions"

    @property
    def dead(self) -> str:
        return f"{self.prefix}:dead"

    def state(self, prospect: str) -> str:
        return f"{self.prefix}:state:{prospect}"

    def facts(self, prospect: str) -> str:
        """The prospect's scorecard facts as versions before `connectors.state_value` kept them;
        read, never written, for states those versions wrote."""
        return f"{self.prefix}:facts:{prospect}"

    @property
    def scorecard(self) -> str:
        """The live scorecard's counts: one hash, every worker adds its deltas to it."""
        return f"{self.prefix}:scorecard"

    def counted(self, chunk: str) -> str:
        """Marks a checkpoint chunk's counts as added, so a call re-sent after a lost reply
        does not add them again (`connectors.redis_sink`)."""
        return f"{self.prefix}:counted:{chunk}"

    def sent_marker(self, command_id: str) -> str:
        return f"{self.prefix}:sent:{command_id}"

    def timers(self, shard: int) -> str:
        return f"{self.prefix}:timers:{shard}"

    def suspect(self, shard: int) -> str:
        """The entry of a shard handed to the flow alone, on suspicion of killing the process
        (see `connectors.redis_source`): if the process dies, this entry was the cause."""
        return f"{self.prefix}:suspect:{shard}"

    @property
    def suspect_lock(self) -> str:
        """Held by the shard whose suspect is in flight: one suspect in a cluster at a time."""
        return f"{self.prefix}:suspect-lock"

    @property
    def shard_count(self) -> str:
        """The shard count the streams under this prefix were written with (see `claim_shards`)."""
        return f"{self.prefix}:shards"

    @property
    def group(self) -> str:
        return f"{self.prefix}-engine"

    def consumer(self, shard: int) -> str:
        """Consumer names belong to the shard, so a shard's next owner finds its pending entries."""
        return f"shard-{shard}"
