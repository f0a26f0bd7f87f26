"""The YAML inventory format (``all:``/``hosts:``/``children:``/``vars:``), as a reader mixin."""

from __future__ import annotations

from typing import Any

from ..errors import LoadError
from ..model import SourceLoc
from ..yamlsrc import Document, is_map, is_null, is_seq, items, kind_name, parse, to_python
from .drafts import Drafts, GroupDraft, VarLayer, suggest_hint

__all__ = ["YamlReader", "parse_yaml"]


class YamlReader(Drafts):
    """Reads a YAML inventory (or a vars file's mapping) into the drafts."""

    def read_yaml(self, doc: Document, problems: list[LoadError]) -> None:
        self.problems.extend(problems)
        root = doc.root
        if is_null(root):
            return
        if not is_map(root):
            self.error(f"an inventory must be a mapping of groups (such as 'all:'), found "
                       f"{kind_name(root)}", doc.loc(root),
                       hint="start with 'all:', then 'hosts:' and 'children:' under it")
            return
        plugin = next((node for name, _, node in items(root) if name == "plugin"
                       and not is_map(node) and not is_null(node)), None)
        if plugin is not None:  # a dynamic inventory's config: its other keys are no groups
            self.error(f"group 'plugin' must be a mapping with 'hosts', 'children' or 'vars', "
                       f"found {kind_name(plugin)}", doc.loc(plugin),
                       hint="inventory plugins are not supported: give a static inventory")
            return
        for name, key_node, node in items(root):
            self.yaml_group(doc, name, key_node, node, None)

    def yaml_group(self, doc: Document, name: str, key_node: Any, node: Any,
                   parent: str | None) -> None:
        loc = doc.loc(key_node)
        group = self.group(name, loc)
        if parent is not None:
            self.groups[parent].children.setdefault(name, loc)
        if is_null(node):
            return
        if not is_map(node):
            self.error(f"group '{name}' must be a mapping with 'hosts', 'children' or 'vars', "
                       f"found {kind_name(node)}", doc.loc(node),
                       hint="indent 'hosts:', 'children:' or 'vars:' under the group name")
            return
        for key, knode, value in items(node):
            if key == "hosts":
                self.yaml_hosts(doc, group, value)
            elif key == "vars":
                group.vars.update(self.yaml_vars(doc, value, f"'vars' of group '{name}'"))
            elif key == "children":
                if is_map(value):
                    for child, cnode, cvalue in items(value):
                        self.yaml_group(doc, child, cnode, cvalue, name)
                elif not is_null(value):
                    self.error(f"'children' of group '{name}' must be a mapping of group "
                               f"names, found {kind_name(value)}", doc.loc(value),
                               hint="write each child group as 'name:' on its own line")
            else:
                self.error(f"unknown key '{key}' in group '{name}'", doc.loc(knode),
                           hint=suggest_hint(key, ("hosts", "children", "vars")) or
                           "a group holds only 'hosts:', 'children:' and 'vars:'; "
                           "put hosts under 'hosts:'")

    def yaml_hosts(self, doc: Document, group: GroupDraft, node: Any) -> None:
        if is_null(node):
            return
        if not is_map(node):
            self.error(f"'hosts' of group '{group.name}' must be a mapping of host names, "
                       f"found {kind_name(node)}", doc.loc(node),
                       hint="write each host as 'name:' on its own line" if is_seq(node)
                       else None)
            return
        for name, key_node, value in items(node):
            if is_map(value) or is_null(value):
                host_vars = self.yaml_vars(doc, value, f"host '{name}'")
            else:
                self.error(f"host '{name}' must be followed by a mapping of variables or "
                           f"nothing, found {kind_name(value)}", doc.loc(value),
                           hint="write its variables as 'key: value' lines indented under it")
                host_vars = {}
            self.add_hosts(group, name, doc.loc(key_node), host_vars)

    def yaml_vars(self, doc: Document, node: Any, owner: str) -> VarLayer:
        if is_null(node):
            return {}
        if not is_map(node):
            self.error(f"{owner} must be a mapping of variables, found {kind_name(node)}",
                       doc.loc(node))
            return {}
        return {key: (to_python(value), doc.loc(value)) for key, _, value in items(node)}


def parse_yaml(path: str, text: str) -> tuple[Document, list[LoadError]]:
    """yamlsrc.parse, with PyYAML's odd failures on malformed tagged scalars contained."""
    try:
        return parse(path, text)
    except (IndexError, KeyError, ValueError, TypeError, AttributeError) as exc:
        return Document(path, text, None), [LoadError(f"cannot read YAML: {exc}",
                                                      loc=SourceLoc(path, 1, 1))]
