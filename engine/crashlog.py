"""Internal errors: the traceback goes to a file under the state folder, never to the
terminal, and the user gets one line naming that file."""

from __future__ import annotations

import os
import sys
import time
import traceback

__all__ = ["write_crash_log", "crash_log_dir"]


def crash_log_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return os.path.join(base, "runbook", "crashes")


def write_crash_log(exc: BaseException, context: str = "") -> str | None:
    """Write the traceback of ``exc`` to a new crash log; its path, or None."""
    try:
        folder = crash_log_dir()
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, time.strftime("crash-%Y%m%d-%H%M%S") +
                            f"-{os.getpid()}-{id(exc) % 10000}.log")
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"runbook {' '.join(sys.argv[1:])}\n")
            if context:
                f.write(context + "\n")
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=f)
        return path
    except OSError:
        return None
