"""Living documentation: the API and event inventories and the AsyncAPI document, generated from the code.

``python -m tools.inventory`` writes ``docs/learn/inventory/api.md``, ``events.md`` and
``asyncapi.yaml``; ``--check`` regenerates them in memory and exits 1 with a unified diff when a
committed file differs (``make inventory``; the drift tests in tests/unit/inventory run it).
Nothing is written by hand: the routes come from each app's OpenAPI document, the topics from
the chassis, the event types and payload schemas from the domain events, the saga definitions and
the participants' payload models, and the consumers from the workers as their composition roots
build them. No server is started and no database, broker or cache is touched.
"""
