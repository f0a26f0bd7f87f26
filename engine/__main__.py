"""``python -m engine`` is the ``runbook`` command."""


from .cli import entry

entry()
