"""What the engine's event handlers work with, in one typed object.

The handlers (`operators.facts`, `operators.actions`) are plain functions over the prospect's
state and one event; `Parts` gives them the compiled policy, the `Decider` and the `Sequencer`
by name, so no handler reaches into an engine object or a mixin's undeclared attributes.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from operators.compiled import Compiled
from operators.decider import Decider
from operators.emit import Out
from operators.sequences import Sequencer
from operators.state import ProspectState


@dataclass(frozen=True, slots=True)
class Parts:
    """The engine's collaborators: shared by every prospect, immutable, holding no state."""

    k: Compiled
    decider: Decider
    sequencer: Sequencer


# An event handler: (parts, state, event, event time in ms, outputs). The engine has set
# `state.clock` to the decision time ("now": the event time, never earlier than the clock).
Handler = Callable[[Parts, ProspectState, Any, int, list[Out]], None]
