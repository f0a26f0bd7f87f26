"""``python -m engine`` is the ``runbook`` command."""

import sys

from .cli import main

sys.exit(main())
