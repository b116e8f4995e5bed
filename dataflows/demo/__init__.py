"""The demo and its tooling: `touchflow demo`, the simulated sender, the traffic simulator.

Nothing here is the product. It exists to show the product working and to feed its tests and
benchmarks: a simulated day of prospects (`simulate`, `traffic`), a sender that answers commands
as the providers would and posts their signed callbacks to the gateway (`sender`, `answers`,
`callbacks`, `gateway_wire`), and the two demos that run them against the real flow
(`replay_demo` for `touchflow demo --replay`, `live_demo` for plain `touchflow demo`).

The product never imports this package: operators, connectors and the rest of `dataflows` run
without it, and `dataflows.cli` reaches it only inside the `demo` command
(tests/dataflows/test_product_apart.py holds both). So the demo can change, or be left out, without
touching what runs in production. This file stays empty of imports: importing one demo module
must not import the others.
"""
