"""YAML with positions: parse a file into nodes that remember file:line:col.

PyYAML's composed nodes carry marks; this module turns YAML syntax errors and
duplicate mapping keys into LoadErrors at the right place, resolves merge keys
(``<<``), and converts scalar nodes to Python values.  Loaders read the node tree
so that every error can point at the exact key or value that caused it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Iterator

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import LoadError
from .model import SourceLoc

__all__ = ["Document", "parse", "loc_of", "to_python", "is_map", "is_seq", "is_scalar",
           "items", "MAX_DEPTH"]

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_DEPTH = 200


class Document:
    """One parsed YAML file: its root node, text and content hash."""

    def __init__(self, path: str, text: str, root: Node | None) -> None:
        self.path = path
        self.text = text
        self.root = root
        self.content_hash = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()

    def loc(self, node: Node | None) -> SourceLoc:
        return loc_of(self.path, node)


def loc_of(path: str, node: Node | None) -> SourceLoc:
    if node is None or node.start_mark is None:
        return SourceLoc(path, 1, 1)
    return SourceLoc(path, node.start_mark.line + 1, node.start_mark.column + 1)


def read_text(path: str) -> str:
    """A file's text; an unreadable file is a LoadError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise LoadError(f"file not found: {path}", hint="check the path") from None
    except IsADirectoryError:
        raise LoadError(f"{path} is a directory, not a YAML file") from None
    except UnicodeDecodeError as exc:
        raise LoadError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise LoadError(f"cannot read {path}: {exc.strerror}") from None


def parse(path: str, text: str | None = None) -> tuple[Document, list[LoadError]]:
    """Parse one YAML document; returns it and the problems found (syntax, duplicates)."""
    if text is None:
        text = read_text(path)
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        return Document(path, text, None), [_syntax_error(path, exc, text)]
    except yaml.YAMLError as exc:
        return Document(path, text, None), [LoadError(f"YAML error: {exc}",
                                                      loc=SourceLoc(path, 1, 1))]
    except RecursionError:
        return Document(path, text, None), [LoadError("YAML nesting is too deep",
                                                      loc=SourceLoc(path, 1, 1))]
    doc = Document(path, text, root)
    problems: list[LoadError] = []
    if root is not None:
        _prepare(doc, root, problems, set(), 0)
    return doc, problems


def _syntax_error(path: str, exc: yaml.MarkedYAMLError, text: str) -> LoadError:
    problem = (exc.problem or "syntax error").strip()
    context = (exc.context or "").strip()
    mark = exc.problem_mark or exc.context_mark
    hint = None
    lines = text.splitlines()
    if "could not find expected ':'" in problem or "unexpected end of stream" in problem:
        # the problem is only noticed later (often at the end of the file): point at its start
        mark = exc.context_mark or mark
    loc = SourceLoc(path, mark.line + 1, mark.column + 1) if mark else SourceLoc(path, 1, 1)
    if "expected a single document" in (context + " " + problem):
        message = "a runbook file holds one YAML document; found a second one ('---')"
        return LoadError(f"YAML syntax error: {message}", loc=loc,
                         hint="split it into two files, or remove the '---' line")
    at_mark = lines[mark.line][mark.column:mark.column + 1] if mark and mark.line < len(lines) \
        else ""
    if "tab" in problem or at_mark == "\t":
        hint = "YAML does not allow tabs for indentation: use spaces"
    elif "mapping values are not allowed" in problem:
        hint = "a value containing ': ' must be quoted, or the indentation is off"
    elif "could not find expected ':'" in problem:
        hint = "a key is missing its ':' or a multi-line string is not indented"
    elif "unexpected end of stream" in problem and "quoted scalar" in context:
        hint = "the quote that starts here is never closed"
    elif "undefined alias" in problem or "undefined alias" in context:
        name = _word_at(lines, mark)
        if name and "'" not in problem:
            problem = f"found undefined alias '{name.lstrip('*')}'"
        hint = "define the anchor (&name) before using the alias (*name)"
    message = f"YAML syntax error: {problem}"
    if context and context not in problem:
        message += f" ({context})"
    return LoadError(message, loc=loc, hint=hint)


def _word_at(lines: list[str], mark: Any) -> str | None:
    if mark is None or mark.line >= len(lines):
        return None
    tail = lines[mark.line][mark.column:]
    word = re.match(r"\*?[^\s,\]\}]+", tail)
    return word.group(0) if word else None


def _prepare(doc: Document, node: Node, problems: list[LoadError], stack: set[int],
             depth: int) -> None:
    """Check for duplicate keys, recursive aliases and non-scalar keys; resolve ``<<``."""
    if depth > MAX_DEPTH:
        problems.append(LoadError("YAML nesting is too deep", loc=doc.loc(node)))
        return
    if id(node) in stack:
        problems.append(LoadError("an alias refers to the node that contains it (a cycle)",
                                  loc=doc.loc(node)))
        return
    if isinstance(node, MappingNode):
        stack.add(id(node))
        seen: dict[Any, Node] = {}
        merges: list[tuple[Node, Node]] = []
        kept: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                merges.append((key_node, value_node))
                continue
            if not isinstance(key_node, ScalarNode):
                problems.append(LoadError("a mapping key must be a plain value, not a "
                                          "list or mapping", loc=doc.loc(key_node)))
                continue
            key = key_node.value
            if key in seen:
                first = seen[key]
                problems.append(LoadError(
                    f"duplicate key '{key}' (first defined at line {first.start_mark.line + 1})",
                    loc=doc.loc(key_node), hint="YAML keeps only the last value: remove one"))
                kept = [(k, v) for k, v in kept if k is not first]
            seen[key] = key_node
            kept.append((key_node, value_node))
        for _, value_node in node.value:
            _prepare(doc, value_node, problems, stack, depth + 1)
        stack.discard(id(node))
        if merges:
            merged: list[tuple[Node, Node]] = []
            for key_node, value_node in merges:
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, MappingNode):
                        problems.append(LoadError("'<<' merges a mapping (or a list of "
                                                  "mappings)", loc=doc.loc(source)))
                        continue
                    for k, v in source.value:
                        if isinstance(k, ScalarNode) and k.value not in seen and \
                                k.tag != "tag:yaml.org,2002:merge":
                            merged.append((k, v))
                            seen[k.value] = k
            node.value = merged + kept
        else:
            node.value = kept
    elif isinstance(node, ScalarNode):
        reason = scalar_error(node)
        if reason:
            hint = None
            if node.tag == "!vault":
                hint = ("Ansible Vault is not supported: declare a secret param and give it as "
                        "env:NAME or file:PATH")
            elif node.tag.startswith("!") and not node.tag.startswith("!!"):
                hint = "YAML tags are not used by runbook: remove it, or quote the value"
            problems.append(LoadError(reason, loc=doc.loc(node), hint=hint))
            node.tag = "tag:yaml.org,2002:str"
    elif isinstance(node, SequenceNode):
        stack.add(id(node))
        for child in node.value:
            _prepare(doc, child, problems, stack, depth + 1)
        stack.discard(id(node))


_PLAIN_TAGS = frozenset("tag:yaml.org,2002:" + t for t in ("str", "null", "bool"))


class _Constructor(yaml.constructor.SafeConstructor):
    pass


def to_python(node: Node | None) -> Any:
    """A node as plain Python (dict, list, str, int, float, bool, None, dates)."""
    if node is None:
        return None
    if isinstance(node, ScalarNode):
        if node.tag == "tag:yaml.org,2002:str":
            return node.value
        return _Constructor().construct_object(node, deep=True)
    if isinstance(node, SequenceNode):
        return [to_python(child) for child in node.value]
    if isinstance(node, MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            out[to_python(key_node)] = to_python(value_node)
        return out
    raise LoadError(f"unsupported YAML node {node.tag}")


def scalar_error(node: ScalarNode) -> str | None:
    """A reason why a scalar cannot be converted (an unknown tag), or None."""
    if node.tag in _PLAIN_TAGS:
        return None
    if not node.tag.startswith("tag:yaml.org,2002:"):
        return f"unknown YAML tag '{node.tag}'"
    try:
        to_python(node)
    except yaml.YAMLError as exc:
        return f"cannot read value: {getattr(exc, 'problem', None) or exc}"
    except (ValueError, OverflowError, TypeError, IndexError, AttributeError) as exc:
        return f"cannot read value {node.value!r} as {node.tag.rsplit(':', 1)[-1]}: {exc}"
    return None


def is_map(node: Node | None) -> bool:
    return isinstance(node, MappingNode)


def is_seq(node: Node | None) -> bool:
    return isinstance(node, SequenceNode)


def is_scalar(node: Node | None) -> bool:
    return isinstance(node, ScalarNode)


def is_null(node: Node | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null")


def items(node: MappingNode) -> Iterator[tuple[str, Node, Node]]:
    """(key, key node, value node) for each entry of a mapping."""
    for key_node, value_node in node.value:
        yield str(key_node.value), key_node, value_node


def kind_name(node: Node | None) -> str:
    """How a node reads to a user: 'a mapping', 'a list', 'a string', 'null'..."""
    if node is None or is_null(node):
        return "nothing (null)"
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    tag = node.tag.rsplit(":", 1)[-1]
    return {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean",
            "timestamp": "a date"}.get(tag, f"a {tag}")
