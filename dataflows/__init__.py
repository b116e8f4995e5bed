"""Wiring: the outreach dataflow built from operators and connectors, and the `touchflow` CLI."""
