"""``python -m scheduler`` is the ``goodwill`` command."""

import sys

from scheduler.entrypoints.cli import main

sys.exit(main())
