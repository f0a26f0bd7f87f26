"""YAML -> model.  Every problem is reported at its file:line:col, all of them at once.

The loader reads PyYAML's node tree (see yamlsrc) rather than plain data so that
each key and value keeps its position.  It validates structure, types, keys (with
did-you-mean), action parameters against each action's schema, template syntax,
step ids and includes, and records every template "site" so that the static
checker (checker.py) can look for undefined variables afterwards.

``load_runbook`` (core.py) runs one ``_Loader``, a stack of mixins, one per module:
reporting (state, problems, template sites) <- scalars <- fields <- args <- steps
<- includes <- core.
"""

from __future__ import annotations

from .core import LoadResult, load_runbook
from .keys import (BLOCK_KEYS, CONDITION_KEYS, INCLUDE_KEYS, PARAM_KEYS, RUNBOOK_KEYS,
                   STEP_KEYS)
from .reporting import Site

__all__ = ["load_runbook", "LoadResult", "Site", "RUNBOOK_KEYS", "STEP_KEYS", "BLOCK_KEYS",
           "INCLUDE_KEYS", "PARAM_KEYS", "CONDITION_KEYS"]
