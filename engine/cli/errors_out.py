"""How errors reach the terminal: ``file:line:col: message``, the line, a caret, a hint.

A user's mistake never shows a traceback.  An unexpected exception prints one line
and writes the traceback to a crash log whose path is printed.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Iterable, TextIO

import click

from ..crashlog import write_crash_log
from ..errors import (EXIT_INTERRUPTED, EXIT_USAGE, LoadError, RunbookError, UserError,
                      ValidationFailed)

__all__ = ["guarded", "format_problem", "print_problems", "use_color"]

_line_cache: dict[str, list[str]] = {}


def use_color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return hasattr(stream, "isatty") and stream.isatty()


def _source_line(path: str, line: int) -> str | None:
    lines = _line_cache.get(path)
    if lines is None:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            lines = []
        _line_cache[path] = lines
    if 1 <= line <= len(lines):
        return lines[line - 1]
    return None


def format_problem(problem: RunbookError, *, color: bool = False) -> str:
    """One problem as the terminal shows it (several lines)."""
    severity = getattr(problem, "severity", "error")
    label = click.style(severity + ":", fg="red" if severity == "error" else "yellow",
                        bold=True) if color else severity + ":"
    loc = getattr(problem, "loc", None)
    head = f"{loc}: {label} {problem.message}" if loc else f"{label} {problem.message}"
    if color and loc:
        head = click.style(str(loc), bold=True) + head[len(str(loc)):]
    out = [head]
    if loc:
        text = _source_line(loc.path, loc.line)
        if text is not None:
            gutter = f"{loc.line:>5} | "
            out.append(gutter + text.replace("\t", " "))
            caret = " " * (len(gutter) - 2) + "| " + " " * max(0, loc.col - 1) + "^"
            out.append(click.style(caret, fg="green", bold=True) if color else caret)
    if problem.hint:
        out.append(("  " + click.style("hint:", fg="cyan", bold=True) if color else "  hint:")
                   + " " + problem.hint)
    return "\n".join(out)


def print_problems(problems: Iterable[RunbookError], stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    color = use_color(stream)
    for problem in problems:
        print(format_problem(problem, color=color), file=stream)


def report(exc: RunbookError, stream: TextIO | None = None) -> None:
    """Print a RunbookError (or all problems of a ValidationFailed)."""
    stream = stream or sys.stderr
    if getattr(exc, "problems", None) and not isinstance(exc, ValidationFailed):
        print_problems(exc.problems, stream)  # type: ignore[attr-defined]
        return
    if isinstance(exc, ValidationFailed):
        print_problems(exc.problems, stream)
        errors = sum(1 for p in exc.problems if p.severity == "error")
        warnings = len(exc.problems) - errors
        summary = f"{errors} error{'s' if errors != 1 else ''}"
        if warnings:
            summary += f", {warnings} warning{'s' if warnings != 1 else ''}"
        print(summary, file=stream)
    else:
        print_problems([exc], stream)


def guarded(body: Callable[[], Any]) -> int:
    """Run the CLI body; map every outcome to an exit code and a clean message."""
    try:
        result = body()
        return int(result or 0)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code if exc.exit_code else EXIT_USAGE
    except (UserError, LoadError) as exc:
        report(exc)
        return exc.exit_code
    except RunbookError as exc:
        report(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1
    except Exception as exc:  # the one place that may catch everything
        path = write_crash_log(exc)
        where = f"; details in {path}" if path else ""
        print(f"internal error: {type(exc).__name__}: {exc}{where}\n"
              "  this is a bug in runbook, not in your runbook: please report it with that file",
              file=sys.stderr)
        return 70
