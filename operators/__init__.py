"""The touchflow domain: event and command types, policy, prospect state and the contact rules.

Pure Python with no I/O, so every rule is testable without Bytewax or Redis. The one Bytewax
adapter (`operators.logic`) stays thin: it only feeds events and timers to `operators.engine`.
"""
