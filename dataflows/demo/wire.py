"""What carries the simulated sender's answers: the `Wire` interface and the records it passes.

Kept apart from both implementations (`sender.RedisWire` appends contract events to the
streams, `gateway_wire.GatewayWire` posts them as signed provider callbacks), so the sender
depends on the interface alone and the gateway's wire can change without touching the sender.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

EventDict = dict[str, object]


class Outbound(NamedTuple):
    """An answer due now: the command it answers and the contract event, `ts` set."""

    command: str
    event: EventDict

    @property
    def prospect(self) -> str:
        return str(self.event["prospect"])


@dataclass(frozen=True)
class Delivery:
    """What a wire carried of one round: the first `done` answers (their commands may be
    acknowledged); the rest go again later. `requests` counts (endpoint, status)."""

    done: int
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)


class Wire(Protocol):
    """Carries the sender's answers: to the event streams, or to a gateway as providers do."""

    def send(self, answers: Sequence[Outbound], now: float) -> Delivery: ...

    def close(self) -> None: ...
