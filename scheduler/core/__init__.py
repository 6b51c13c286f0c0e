"""The pure domain: no I/O; stdlib, pydantic and yaml only."""
