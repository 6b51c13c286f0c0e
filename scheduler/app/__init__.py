"""Use cases: one module per verb family; they depend on ports, never on the concrete store."""
