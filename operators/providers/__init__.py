"""Provider payloads to contract events (CONTRACT.md section 7), in pure functions.

One module per provider, no I/O: each takes the request's body (or form parameters) and the time
of arrival and returns a `Mapped` (`common.py`): the contract events it became, each with either
the prospect the sender attached or the address to look up, plus the provider events that have
no contract meaning (counted, not appended) and those that cannot be read (dead-lettered one by
one). Verification and prospect lookup happen in `connectors/`, where the I/O is.
"""
