"""One sandboxed Jinja2 environment for every template and condition.

Only strings written in a runbook are templates.  Values that come from
inventories, params, command output or alert payloads are data: they are inserted
into templates but never rendered themselves, so they can never run template code.
The environment is sandboxed (and immutable) besides, and undefined names fail
loudly (StrictUndefined).

A string that is exactly one ``{{ expression }}`` renders to the expression's
native value (a list stays a list); any other template renders to a string.
Compiled templates are cached, so a step rendered on 500 hosts compiles once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import ntpath
import os
import posixpath
import re
import shlex
import threading
from functools import lru_cache
from typing import Any, Iterator, Mapping, Sequence

import jinja2
import jinja2.meta
import jinja2.sandbox
from jinja2 import StrictUndefined

from .errors import TemplateError
from .model import SourceLoc

__all__ = ["Templar", "Scope", "Lazy", "templar", "has_template", "suggest"]

_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.S)
_RESULT = "__runbook_result"


def has_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class Lazy:
    """A runbook-authored value rendered only when a template reads it."""

    __slots__ = ("value", "loc")

    def __init__(self, value: Any, loc: SourceLoc | None = None) -> None:
        self.value = value
        self.loc = loc

    def __repr__(self) -> str:
        return f"Lazy({self.value!r})"


class Scope(Mapping[str, Any]):
    """Variables a template sees: layers, highest precedence first.

    ``Lazy`` values are rendered on access with this same scope, so runbook vars may
    refer to params, inventory variables, registered results and each other.
    """

    __slots__ = ("layers", "_templar")

    def __init__(self, layers: Sequence[Mapping[str, Any]], templar: "Templar") -> None:
        self.layers = list(layers)
        self._templar = templar

    def child(self, layer: Mapping[str, Any]) -> "Scope":
        """A scope with one more layer on top (loop item, block vars, ``result``)."""
        return Scope([layer, *self.layers], self._templar)

    def __getitem__(self, key: str) -> Any:
        for layer in self.layers:
            if key in layer:
                value = layer[key]
                if type(value) is Lazy:
                    return self._templar.resolve_lazy(key, value, self)
                return value
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return any(key in layer for layer in self.layers)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for layer in self.layers:
            for key in layer:
                if key not in seen:
                    seen.add(key)
                    yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def copy(self) -> dict[str, Any]:
        """A flat dict of the stored values (Lazy ones not rendered)."""
        return {key: self.raw(key) for key in self}

    def raw(self, key: str, default: Any = None) -> Any:
        """The stored value without rendering (a Lazy stays Lazy)."""
        for layer in self.layers:
            if key in layer:
                return layer[key]
        return default


# ---------------------------------------------------------------- filters and tests
def _quote(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(shlex.quote(str(v)) for v in value)
    return shlex.quote(str(value))


def _to_json(value: Any, indent: int | None = None, sort_keys: bool = False) -> str:
    return json.dumps(value, indent=indent, sort_keys=sort_keys, default=str)


def _to_nice_json(value: Any, indent: int = 2) -> str:
    return json.dumps(value, indent=indent, sort_keys=True, default=str)


def _from_json(value: str) -> Any:
    try:
        return json.loads(value)
    except (TypeError, ValueError) as exc:
        raise jinja2.TemplateRuntimeError(f"from_json: not valid JSON: {exc}") from None


def _to_yaml(value: Any, indent: int = 2) -> str:
    import yaml
    return yaml.safe_dump(value, indent=indent, default_flow_style=False, sort_keys=False)


def _from_yaml(value: str) -> Any:
    import yaml
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise jinja2.TemplateRuntimeError(f"from_yaml: not valid YAML: {exc}") from None


def _b64encode(value: Any, encoding: str = "utf-8") -> str:
    data = value if isinstance(value, bytes) else str(value).encode(encoding)
    return base64.b64encode(data).decode("ascii")


def _b64decode(value: str, encoding: str = "utf-8") -> str:
    return base64.b64decode(value).decode(encoding, errors="replace")


def _regex_flags(ignorecase: bool, multiline: bool) -> int:
    return (re.I if ignorecase else 0) | (re.M if multiline else 0)


def _regex_replace(value: Any, pattern: str, replacement: str = "", ignorecase: bool = False,
                   multiline: bool = False, count: int = 0) -> str:
    return re.sub(pattern, replacement, str(value), count=count,
                  flags=_regex_flags(ignorecase, multiline))


def _regex_search(value: Any, pattern: str, *groups: Any, ignorecase: bool = False,
                  multiline: bool = False) -> Any:
    match = re.search(pattern, str(value), flags=_regex_flags(ignorecase, multiline))
    if match is None:
        return None
    if not groups:
        return match.group(0)
    picked = [match.group(int(g[1:]) if isinstance(g, str) and g.startswith("\\") else g)
              for g in groups]
    return picked if len(picked) > 1 else picked[0]


def _regex_findall(value: Any, pattern: str, ignorecase: bool = False,
                   multiline: bool = False) -> list[Any]:
    return re.findall(pattern, str(value), flags=_regex_flags(ignorecase, multiline))


_TRUE = {"true", "yes", "on", "1", "y"}


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in _TRUE
    return bool(value)


def _hash(value: Any, algorithm: str = "sha1") -> str:
    try:
        digest = hashlib.new(algorithm)
    except ValueError:
        raise jinja2.TemplateRuntimeError(f"hash: unknown algorithm '{algorithm}'") from None
    digest.update(value if isinstance(value, bytes) else str(value).encode())
    return digest.hexdigest()


def _mandatory(value: Any, msg: str | None = None) -> Any:
    if isinstance(value, jinja2.Undefined):
        raise jinja2.TemplateRuntimeError(msg or "a mandatory value is undefined")
    return value


def _ternary(value: Any, true_value: Any, false_value: Any, none_value: Any = None) -> Any:
    if value is None and none_value is not None:
        return none_value
    return true_value if value else false_value


def _combine(*dicts: Mapping[str, Any], recursive: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for d in dicts:
        for key, value in d.items():
            if recursive and isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = _combine(out[key], value, recursive=True)
            else:
                out[key] = value
    return out


def _dict2items(value: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": v} for k, v in value.items()]


def _items2dict(value: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {item["key"]: item["value"] for item in value}


def _test_match(value: Any, pattern: str, ignorecase: bool = False) -> bool:
    return re.match(pattern, str(value), flags=re.I if ignorecase else 0) is not None


def _test_search(value: Any, pattern: str, ignorecase: bool = False) -> bool:
    return re.search(pattern, str(value), flags=re.I if ignorecase else 0) is not None


def _now(fmt: str | None = None, utc: bool = False) -> Any:
    """``now()`` -> ISO timestamp; ``now('%Y%m%d')`` -> formatted."""
    import datetime
    moment = datetime.datetime.now(datetime.timezone.utc) if utc else datetime.datetime.now()
    return moment.strftime(fmt) if fmt else moment.isoformat(timespec="seconds")


def _lookup(kind: str, *terms: str, default: Any = None) -> Any:
    """Ansible's ``lookup('env', 'HOME')`` and ``lookup('file', 'path')`` on the runner."""
    if kind == "env":
        values = [os.environ.get(t, default if default is not None else "") for t in terms]
    elif kind == "file":
        values = []
        for term in terms:
            try:
                with open(os.path.expanduser(term), encoding="utf-8") as f:
                    values.append(f.read().rstrip("\n"))
            except OSError as exc:
                raise jinja2.TemplateRuntimeError(f"lookup('file', {term!r}): "
                                                  f"{exc.strerror}") from None
    else:
        raise jinja2.TemplateRuntimeError(f"unknown lookup '{kind}' (known: env, file)")
    return values[0] if len(values) == 1 else ",".join(str(v) for v in values)


GLOBALS = {"now": _now, "lookup": _lookup}

FILTERS = {
    "quote": _quote, "shell_quote": _quote, "to_json": _to_json, "to_nice_json": _to_nice_json,
    "from_json": _from_json, "to_yaml": _to_yaml, "from_yaml": _from_yaml,
    "b64encode": _b64encode, "b64decode": _b64decode, "regex_replace": _regex_replace,
    "regex_search": _regex_search, "regex_findall": _regex_findall, "bool": _bool,
    "basename": posixpath.basename, "dirname": posixpath.dirname,
    "win_basename": ntpath.basename, "hash": _hash, "mandatory": _mandatory,
    "ternary": _ternary, "combine": _combine, "dict2items": _dict2items,
    "items2dict": _items2dict, "splitlines": lambda v: str(v).splitlines(),
    "expanduser": os.path.expanduser,
}
def _result_test(key: str, want: bool = True) -> Any:
    def test(result: Any) -> bool:
        if not isinstance(result, Mapping):
            raise jinja2.TemplateRuntimeError(f"the '{key}' test needs a registered result")
        return bool(result.get(key)) is want
    return test


TESTS = {"match": _test_match, "search": _test_search, "regex": _test_search,
         # Ansible's tests on registered results: `when: r is failed`
         "failed": _result_test("failed"), "succeeded": _result_test("failed", False),
         "success": _result_test("failed", False), "changed": _result_test("changed"),
         "skipped": _result_test("skipped")}


# ---------------------------------------------------------------- the environment
class Templar:
    """Compiles (once) and renders templates and conditions."""

    def __init__(self) -> None:
        env = jinja2.sandbox.ImmutableSandboxedEnvironment(
            undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False,
            extensions=["jinja2.ext.loopcontrols"])
        env.filters.update(FILTERS)
        env.tests.update(TESTS)
        env.globals.update(GLOBALS)
        self.env = env
        self.globals: dict[str, Any] = dict(env.globals)
        self._resolving = threading.local()
        self._template = lru_cache(maxsize=4096)(self._compile_template)
        self._condition = lru_cache(maxsize=4096)(self._compile_condition)
        self._names = lru_cache(maxsize=4096)(self._find_names)
        self._parse_template = lru_cache(maxsize=4096)(self._parse_template_uncached)
        self._parse_condition = lru_cache(maxsize=4096)(self._parse_condition_uncached)

    # -- compiling ------------------------------------------------------------------
    def _compile_template(self, text: str) -> jinja2.Template:
        return self.env.from_string(text)

    def _compile_condition(self, expr: str) -> jinja2.Template:
        return self.env.from_string("{%- set " + _RESULT + " = (" + expr + "\n) -%}")

    def _parse_template_uncached(self, text: str) -> Any:
        return self.env.parse(text)

    def _parse_condition_uncached(self, text: str) -> Any:
        from jinja2.parser import Parser
        parser = Parser(self.env, text, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            self.env.parse("{{ " + text + " }}")   # says what the extra token is
            raise jinja2.TemplateSyntaxError("chunk after expression",
                                             parser.stream.current.lineno)
        return expr

    def _find_names(self, text: str, condition: bool) -> frozenset[str]:
        from jinja2 import nodes
        if condition:
            tree: Any = self._parse_condition(text)
        else:
            tree = self._parse_template(text)
            if "{%" in text:   # assignments and loops: let Jinja's own analysis decide
                return frozenset(jinja2.meta.find_undeclared_variables(tree))
        # expressions only: every name read is free (a fast walk of the tree)
        return frozenset(n.name for n in tree.find_all(nodes.Name) if n.ctx == "load")

    def syntax_error(self, text: str, *, condition: bool = False) -> str | None:
        """A readable syntax error for a template or condition, or None when fine.

        Only parses (no compiling to Python), so checking a big runbook stays fast."""
        try:
            if condition:
                tree = self._parse_condition(text)
            else:
                tree = self._parse_template(text)
        except jinja2.TemplateSyntaxError as exc:
            return _syntax_message(exc, text, condition)
        except RecursionError:
            return f"{'condition' if condition else 'template'} is nested too deeply"
        return self._unknown_filter(tree, text)

    def _unknown_filter(self, tree: Any, text: str) -> str | None:
        """Jinja only notices an unknown filter or test when compiling: say it now."""
        from jinja2 import nodes
        found = [tree] if isinstance(tree, (nodes.Filter, nodes.Test)) else []
        for node in [*found, *tree.find_all((nodes.Filter, nodes.Test))]:
            known = self.env.filters if isinstance(node, nodes.Filter) else self.env.tests
            if node.name not in known:
                kind = "filter" if isinstance(node, nodes.Filter) else "test"
                close = suggest(node.name, sorted(known))
                hint = f" (did you mean '{close}'?)" if close else ""
                return f"unknown {kind} '{node.name}' in {text.strip()!r}{hint}"
        return None

    def names(self, text: str, *, condition: bool = False) -> frozenset[str]:
        """Top-level variable names a template or condition reads."""
        if not condition and not has_template(text):
            return frozenset()
        try:
            return self._names(text, condition)
        except (jinja2.TemplateSyntaxError, RecursionError):
            return frozenset()

    # -- rendering ------------------------------------------------------------------
    def render(self, value: Any, scope: Mapping[str, Any], loc: SourceLoc | None = None) -> Any:
        """Render a template value: strings with ``{{``, and inside lists and mappings."""
        if isinstance(value, str):
            if "{" not in value or not has_template(value):
                return value
            return self._render_str(value, scope, loc)
        if isinstance(value, list):
            return [self.render(v, scope, loc) for v in value]
        if isinstance(value, dict):
            return {self.render(k, scope, loc): self.render(v, scope, loc) for k, v in value.items()}
        return value

    def _render_str(self, text: str, scope: Mapping[str, Any], loc: SourceLoc | None) -> Any:
        match = _SINGLE_EXPR.match(text)
        if match and "{{" not in match.group("expr") and "}}" not in match.group("expr"):
            return self.evaluate(match.group("expr"), scope, loc, native=True, source=text)
        try:
            template = self._template(text)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(_syntax_message(exc, text, False), loc=loc) from None
        try:
            ctx = template.new_context(self._with_globals(scope), shared=True)
            return self.env.concat(template.root_render_func(ctx))  # type: ignore[attr-defined]
        except TemplateError:
            raise
        except Exception as exc:
            raise self._runtime_error(exc, text, scope, loc) from None

    def render_text(self, text: str, scope: Mapping[str, Any],
                    loc: SourceLoc | None = None) -> str:
        """A whole text (a template file) rendered to a string, never a native value."""
        try:
            template = self._template(text)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"template syntax error at line {exc.lineno}: {exc.message}",
                                loc=loc) from None
        try:
            try:
                ctx = template.new_context(self._with_globals(scope), shared=True)
                return self.env.concat(template.root_render_func(ctx))  # type: ignore
            except TemplateError:
                raise
            except Exception:
                self.env.handle_exception()   # re-raises with template line numbers
        except TemplateError:
            raise
        except Exception as exc:
            line = _template_line(exc)
            where = f"line {line}: " if line else ""
            error = self._runtime_error(exc, "template", scope, loc)
            error.message = where + error.message
            raise error from None

    def evaluate(self, expr: str, scope: Mapping[str, Any], loc: SourceLoc | None = None,
                 *, native: bool = True, source: str | None = None) -> Any:
        """The value of a bare expression (a condition, or the inside of ``{{ }}``)."""
        try:
            template = self._condition(expr)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(_syntax_message(exc, source or expr, True), loc=loc) from None
        try:
            ctx = template.new_context(self._with_globals(scope), shared=True)
            for _ in template.root_render_func(ctx):  # type: ignore[attr-defined]
                pass
            result = ctx.vars[_RESULT]
        except TemplateError:
            raise
        except Exception as exc:
            raise self._runtime_error(exc, source or expr, scope, loc) from None
        if isinstance(result, jinja2.Undefined):
            raise self._runtime_error(jinja2.UndefinedError(result._undefined_message),
                                      source or expr, scope, loc)
        return result

    def truth(self, expr: str, scope: Mapping[str, Any], loc: SourceLoc | None = None) -> bool:
        """A condition's truth; strings such as "false" and "no" count as false."""
        value = self.evaluate(expr, scope, loc)
        if isinstance(value, str):
            return value.strip().lower() in _TRUE
        return bool(value)

    def scope(self, layers: Sequence[Mapping[str, Any]]) -> Scope:
        return Scope(layers, self)

    # -- lazy vars -------------------------------------------------------------------
    def resolve_lazy(self, key: str, lazy: Lazy, scope: Scope) -> Any:
        resolving: set[str] = getattr(self._resolving, "names", None) or set()
        self._resolving.names = resolving
        if key in resolving:
            raise TemplateError(f"variable '{key}' refers to itself (through: "
                                f"{', '.join(sorted(resolving))})", loc=lazy.loc)
        resolving.add(key)
        try:
            return self.render(lazy.value, scope, lazy.loc)
        finally:
            resolving.discard(key)

    # -- helpers ---------------------------------------------------------------------
    def _with_globals(self, scope: Mapping[str, Any]) -> Mapping[str, Any]:
        if isinstance(scope, Scope):
            return scope if scope.layers and scope.layers[-1] is self.globals else \
                Scope([*scope.layers, self.globals], self)
        return Scope([scope, self.globals], self)

    def _runtime_error(self, exc: Exception, text: str, scope: Mapping[str, Any],
                       loc: SourceLoc | None) -> TemplateError:
        if isinstance(exc, jinja2.UndefinedError):
            message = str(exc.message or exc)
            name = re.match(r"^'([^']+)' is undefined$", message)
            if name:
                hint = suggest(name.group(1), [k for k in scope if not k.startswith("_")])
                return TemplateError(f"undefined variable '{name.group(1)}' in {text.strip()!r}",
                                     loc=loc, hint=f"did you mean '{hint}'?" if hint else
                                     "define it in vars or params, or use '| default(...)'")
            attr = re.match(r"^'(.+)' has no attribute '([^']+)'$", message)
            if attr:
                return TemplateError(f"{attr.group(1)} has no attribute '{attr.group(2)}' in "
                                     f"{text.strip()!r}", loc=loc)
            return TemplateError(f"{message} in {text.strip()!r}", loc=loc)
        if isinstance(exc, jinja2.sandbox.SecurityError):
            return TemplateError(f"not allowed in a template: {exc}", loc=loc)
        if isinstance(exc, RecursionError):
            return TemplateError(f"template recursion too deep in {text.strip()!r}", loc=loc)
        return TemplateError(f"{type(exc).__name__}: {exc} in {text.strip()!r}", loc=loc)


def _template_line(exc: BaseException) -> int | None:
    """The line of the template where a render error happened, from the traceback."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _syntax_message(exc: jinja2.TemplateSyntaxError, text: str, condition: bool) -> str:
    what = "condition" if condition else "template"
    message = (exc.message or "syntax error").rstrip(".")
    message = message.replace(_RESULT, "result").replace("'end of print statement'",
                                                           "end of expression")
    if condition:
        message = message.replace("'end of template'", "end of expression").replace(
            "end of template", "end of expression")
    return f"{what} syntax error: {message} in {text.strip()!r}"


def suggest(word: str, candidates: Sequence[str] | set[str] | frozenset[str],
            cutoff: float = 0.6) -> str | None:
    """The closest candidate to a misspelt word, or None."""
    import difflib
    options = list(candidates)
    matches = difflib.get_close_matches(word, options, n=1, cutoff=cutoff)
    if matches:
        return matches[0]
    if len(word) >= 3:
        starts = [c for c in options if c.startswith(word)]
        if len(starts) == 1:
            return starts[0]
    return None


_TEMPLAR: Templar | None = None
_TEMPLAR_LOCK = threading.Lock()


def templar() -> Templar:
    """The process-wide Templar (compiled templates are shared by all threads)."""
    global _TEMPLAR
    if _TEMPLAR is None:
        with _TEMPLAR_LOCK:
            if _TEMPLAR is None:
                _TEMPLAR = Templar()
    return _TEMPLAR
