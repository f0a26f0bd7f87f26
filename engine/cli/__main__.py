"""``python -m engine.cli`` is the ``runbook`` command."""

import sys

from . import main

sys.exit(main())
