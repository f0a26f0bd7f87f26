"""The one retry loop.  Every retry in the engine (steps, blocks, rollback steps,
connection set-up) goes through ``run()``.

A RetryPolicy is data on a Step (or block); this module turns it into a tenacity
``Retrying``: ``delay`` seconds before the second attempt, multiplied by
``backoff`` each time, ``retries + 1`` attempts in all, and a sleep that wakes up
at once when the run is being stopped.  A single-attempt policy skips tenacity.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from ..model import RetryPolicy

__all__ = ["run", "RetryWanted", "wait_seconds"]

T = TypeVar("T")


class RetryWanted(Exception):
    """Raised by an attempt to ask for another one; ``value`` is its outcome so far,
    returned as the final outcome when no attempt is left."""

    def __init__(self, reason: str, value: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.value = value


def wait_seconds(policy: RetryPolicy, attempt: int) -> float:
    """The pause after attempt number ``attempt`` (1-based)."""
    return policy.delay * (policy.backoff ** (attempt - 1))


def run(policy: RetryPolicy, attempt: Callable[[int], T], *, sleep: Callable[[float], None],
        on_retry: Callable[[int, float, str], None] | None = None,
        stopped: Callable[[], bool] = lambda: False) -> T:
    """Call ``attempt(n)`` until it returns, or until no attempt is left.

    ``on_retry(attempt, delay, reason)`` is called before each pause.
    """
    if policy.attempts <= 1:
        try:
            return attempt(1)
        except RetryWanted as wanted:
            return wanted.value
    import tenacity   # only steps that can retry pay for importing it

    def _before_sleep(state: Any) -> None:
        if on_retry is not None and state.outcome is not None:
            exc = state.outcome.exception()
            reason = exc.reason if isinstance(exc, RetryWanted) else str(exc)
            delay = state.next_action.sleep if state.next_action else 0.0
            on_retry(state.attempt_number, delay, reason)

    def _stop(state: Any) -> bool:
        return state.attempt_number >= policy.attempts or stopped()

    last: list[RetryWanted] = []

    def _sleep(seconds: float) -> None:
        sleep(seconds)
        if stopped():            # stopped during the pause: no new attempt
            raise _Stopped()

    def _attempt(number: int) -> T:
        try:
            return attempt(number)
        except RetryWanted as wanted:
            last[:] = [wanted]
            raise

    retrying = tenacity.Retrying(
        stop=_stop, wait=lambda state: wait_seconds(policy, state.attempt_number),
        retry=tenacity.retry_if_exception_type(RetryWanted), sleep=_sleep,
        before_sleep=_before_sleep, reraise=True)
    try:
        for manager in retrying:
            with manager:
                return _attempt(manager.retry_state.attempt_number)
    except RetryWanted as wanted:
        return wanted.value
    except _Stopped:
        return last[0].value
    raise AssertionError("unreachable: tenacity ended without an outcome")


class _Stopped(Exception):
    """The run began stopping during a pause between attempts."""
