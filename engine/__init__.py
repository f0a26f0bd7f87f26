"""runbook: executable, repeatable, safe runbooks for services that run in Docker."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
