"""Entry points: the composition root, the CLI, the ops HTTP server and rendering.

The only part of ``scheduler`` that may import ``connectors`` or ``workers``."""
