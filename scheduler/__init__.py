"""goodwill's domain core and application layer.

The pure core (``intervals``, ``model``, ``busy``, ``availability``, ``slots``, ``cadence``,
``planner``, ``policy``) performs no I/O and imports no vendor SDK, database or broker.
"""
