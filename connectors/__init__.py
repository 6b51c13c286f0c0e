"""Calendar connectors: one module per provider behind the Protocols in ``scheduler.ports``."""
