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


def _shown_args(args: list[str]) -> list[str]:
    """Command-line words without the values of -e params (they may be secrets)."""
    out = []
    for arg in args:
        if arg.startswith("-e") and not arg.startswith("--") and len(arg) > 2:
            arg = "-e…"
        elif "=" in arg and not arg.startswith("-"):
            arg = arg.split("=", 1)[0] + "=…"
        elif arg.lstrip().startswith("{"):
            arg = "{…}"
        out.append(arg)
    return out


def write_crash_log(exc: BaseException, context: str = "") -> str | None:
    """Write the traceback of ``exc`` to a new crash log; its path, or None."""
    try:
        folder = crash_log_dir()
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, time.strftime("crash-%Y%m%d-%H%M%S") +
                            f"-{os.getpid()}-{id(exc) % 10000}.log")
        from .redact import mask_everywhere
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"runbook {' '.join(_shown_args(sys.argv[1:]))}\n")
            if context:
                f.write(mask_everywhere(context) + "\n")
            f.write(mask_everywhere(text))
        return path
    except OSError:
        return None
