"""``python -m engine.cli`` is the ``runbook`` command."""


from . import entry

entry()
