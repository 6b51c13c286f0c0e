"""Calendar connectors: one module per provider behind the Protocols in ``scheduler.core.ports``."""
