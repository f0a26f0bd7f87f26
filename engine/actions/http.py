"""``http``: call an HTTP endpoint from the machine running the runbook.

Health checks and smoke tests are its job: the result has ``status``, ``json``,
``body``, ``headers`` and ``elapsed`` for ``check``/``until`` conditions.  A refused
connection is a failed result (so ``retries``/``until`` can wait for a service), not
an error.  Requests bypass proxy settings: they go straight to the URL.
"""

from __future__ import annotations

import json as jsonlib
import ssl
import time
import urllib.error
import urllib.request
from typing import Any, Iterable, Mapping

from .base import Action, ActionContext, Plan, StepResult
from .schema import ParamSpec

__all__ = ["Http"]

_MAX_BODY = 4 * 1024 * 1024
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Http(Action):
    """One HTTP request; fails unless the status is expected (and the body matches)."""

    name = "http"
    shorthand = "url"
    summary = "call an HTTP endpoint (health checks, APIs)"
    supports_dry_run = True
    params = {
        "url": ParamSpec("str", required=True, doc="http:// or https:// URL"),
        "method": ParamSpec("str", default="GET",
                            choices=("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")),
        "headers": ParamSpec("dict", doc="request headers"),
        "body": ParamSpec("str", doc="request body (text)"),
        "json": ParamSpec("any", doc="request body, sent as JSON"),
        "status": ParamSpec("list|int", elements="int",
                            doc="accepted status codes (default: any 2xx)"),
        "body_contains": ParamSpec("str", doc="fail unless the body contains this text"),
        "timeout": ParamSpec("duration", default=30, doc="for the whole request"),
        "validate_certs": ParamSpec("bool", default=True, doc="check TLS certificates"),
        "follow_redirects": ParamSpec("bool", default=True),
    }
    exclusive = (("body", "json"),)

    @staticmethod
    def check_args(args: Mapping[str, Any]) -> Iterable[tuple[str, str | None]]:
        url = args.get("url")
        if isinstance(url, str) and "{{" not in url and not url.startswith(("http://",
                                                                             "https://")):
            return [(f"url must start with http:// or https://, got {url!r}", "url")]
        return []

    @classmethod
    def is_read_only(cls, args: Mapping[str, Any]) -> bool:
        return str(args.get("method") or "GET").upper() in _SAFE_METHODS

    def plan(self, ctx: ActionContext, args: Mapping[str, Any]) -> Plan:
        method = str(args.get("method") or "GET").upper()
        return Plan(changed=True, changes=(f"would send {method} {args['url']}",))

    def apply(self, ctx: ActionContext, args: Mapping[str, Any]) -> StepResult:
        method = str(args.get("method") or "GET").upper()
        url = str(args["url"])
        headers = {str(k): str(v) for k, v in (args.get("headers") or {}).items()}
        data = None
        if args.get("json") is not None:
            data = jsonlib.dumps(args["json"]).encode()
            headers.setdefault("Content-Type", "application/json")
        elif args.get("body") is not None:
            data = str(args["body"]).encode()
        timeout = ctx.remaining(float(args.get("timeout") or 30))
        handlers: list[Any] = [urllib.request.ProxyHandler({})]
        if args.get("validate_certs") is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            handlers.append(urllib.request.HTTPSHandler(context=context))
        if args.get("follow_redirects") is False:
            handlers.append(_NoRedirect())
        opener = urllib.request.build_opener(*handlers)
        start = time.monotonic()
        try:
            request = urllib.request.Request(url, data=data, headers=headers, method=method)
            response = opener.open(request, timeout=timeout)
            status, raw, response_headers = response.status, response.read(_MAX_BODY), \
                dict(response.headers)
            response.close()
        except urllib.error.HTTPError as exc:
            status, raw, response_headers = exc.code, exc.read(_MAX_BODY), dict(exc.headers or {})
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            elapsed = time.monotonic() - start
            return StepResult(failed=True, msg=f"{method} {url}: {reason}",
                              fields={"status": None, "url": url, "elapsed": round(elapsed, 4),
                                      "body": "", "json": None, "headers": {}})
        elapsed = time.monotonic() - start
        body = raw.decode("utf-8", errors="replace")
        parsed = None
        if body and ("json" in response_headers.get("Content-Type", "") or
                     body.lstrip()[:1] in ("{", "[")):
            try:
                parsed = jsonlib.loads(body)
            except ValueError:
                parsed = None
        expected = args.get("status")
        if expected is None:
            ok = 200 <= status < 300
            wanted = "2xx"
        else:
            codes = [expected] if isinstance(expected, int) else [int(c) for c in expected]
            ok = status in codes
            wanted = ", ".join(str(c) for c in codes)
        message = f"{method} {url} -> {status} in {elapsed * 1000:.0f} ms"
        if not ok:
            message += f" (expected {wanted})"
        needle = args.get("body_contains")
        if ok and needle is not None and str(needle) not in body:
            ok = False
            message += f" (body does not contain {str(needle)!r})"
        return StepResult(changed=method not in _SAFE_METHODS, failed=not ok, msg=message,
                          stdout=body if len(body) < 65536 else body[:65536],
                          fields={"status": status, "url": url, "elapsed": round(elapsed, 4),
                                  "body": body, "json": parsed, "headers": response_headers})
