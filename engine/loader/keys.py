"""The keys each part of a runbook allows, the names it reserves, and hints for Ansible keys."""

from __future__ import annotations

import re

RUNBOOK_KEYS = ("name", "description", "hosts", "params", "vars", "serial",
                "max_fail_percentage", "forks", "timeout", "on_failure", "lock", "preflight",
                "steps")
STEP_KEYS = ("name", "id", "when", "register", "loop", "loop_var", "retries", "delay", "backoff",
             "until", "timeout", "check", "rollback", "failed_when", "changed_when",
             "ignore_errors", "tags", "run_once", "delegate_to", "no_log", "args", "vars")
BLOCK_KEYS = ("block", "rescue", "always", "name", "id", "when", "tags", "vars", "retries",
              "delay", "backoff", "until", "timeout", "no_log", "ignore_errors", "rollback",
              "delegate_to", "run_once")
INCLUDE_KEYS = ("include", "vars", "name", "id", "when", "tags", "no_log")
PARAM_KEYS = ("type", "required", "default", "choices", "description", "secret")
CONDITION_KEYS = ("when", "until", "check", "failed_when", "changed_when")
_ALL_STEP_WORDS = tuple(sorted(set(STEP_KEYS) | set(BLOCK_KEYS) | set(INCLUDE_KEYS)))

_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = frozenset({"item", "result", "hostvars", "groups", "group_names",
                       "inventory_hostname", "run", "params", "vars", "loop", "range", "dry_run"})

# Keys Ansible users reach for, with what to write instead.
_ANSIBLE_HINTS = {
    "tasks": "runbooks list their steps under 'steps:'",
    "pre_tasks": "steps that must pass on every host before anything changes go under 'preflight:'",
    "handlers": "runbook has no handlers: use a step with 'when: <registered>.changed'",
    "gather_facts": "runbook does not gather facts: remove this key",
    "become": "'become' is an option of shell/command/script steps (become: true)",
    "with_items": "use 'loop:'",
    "loop_control": "use 'loop_var:' to rename the loop variable",
    "notify": "runbook has no handlers: use a step with 'when: <registered>.changed'",
    "environment": "give 'env:' to shell/command/script steps",
    "import_tasks": "use 'include: file.yml'",
    "include_tasks": "use 'include: file.yml'",
    "strategy": "steps run on all hosts of a batch before the next step; use 'serial:' for "
                "rolling batches",
    "any_errors_fatal": "use 'max_fail_percentage: 0'",
}
