"""Root exceptions of touchflow.

Bad input data is never an exception that stops the flow (it becomes a dead-letter record);
these are for bad configuration and misuse, which must stop the program at start.
"""


class TouchflowError(Exception):
    """Root of every error touchflow raises on purpose."""


class ConfigError(TouchflowError):
    """The policy file is unreadable or invalid; the message is one line naming the key."""
