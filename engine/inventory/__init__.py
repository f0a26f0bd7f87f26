"""Hosts, groups and their variables, from YAML or INI inventories (Ansible's shapes).

CONTRACT (implemented by the inventory work; the rest of the engine relies on it):

- ``Inventory.load(path)`` reads a YAML (``all:``/``hosts:``/``children:``/``vars:``) or
  Ansible INI inventory, plus ``group_vars/`` and ``host_vars/`` folders beside it
  (files ``<name>.yml``/``.yaml``/``.json``/no extension, or a folder ``<name>/`` of such
  files).  Every problem is a LoadError at file:line:col; several are collected and
  raised together as ValidationFailed.
- ``Inventory.implicit()`` is the inventory used when none is given: one host
  ``localhost`` with connection ``local``.
- ``Inventory.select(pattern)`` resolves a host pattern to hosts, in inventory order:
  a host, a group, ``all``/``*``, globs (``web*``), unions ``a:b`` or ``a,b``,
  intersections ``a:&b``, exclusions ``a:!b``.  An unknown name is an
  InventoryError (with did-you-mean).
- Variable precedence, low to high: group ``all`` < parent groups < child groups
  (depth, then name) < host; group_vars/host_vars files override the inline vars of
  the same group/host.
- Connection settings come from the merged vars: ``connection`` (local|ssh|docker),
  ``address``, ``port``, ``user``, ``key_file``, ``password``, ``known_hosts``,
  ``host_key_checking`` (strict|accept-new|off), ``container``, ``docker_host``,
  ``proxy_jump``, ``become_password``, ``connect_timeout``, ``docker_tls_*``;
  Ansible's ``ansible_host``, ``ansible_port``, ``ansible_user``, ``ansible_connection``,
  ``ansible_ssh_private_key_file``, ``ansible_password``/``ansible_ssh_pass``,
  ``ansible_become_password`` are aliases.  ``password``/``become_password`` may be
  ``env:NAME`` or ``file:PATH`` references and are secrets.

DECISIONS (where Ansible leaves room):

- Format: ``.ini``/``.cfg`` is INI, ``.yml``/``.yaml``/``.json`` is YAML; any other name
  is INI when its first line is a ``[section]``, YAML when it parses to a mapping, else
  INI.  INI values follow Ansible: ``ast.literal_eval`` or the text itself (so
  ``x=5`` is 5, ``x=True`` is True, ``x=yes`` is the string 'yes').
- A ``group_vars``/``host_vars`` entry is the first of ``<name>/``, ``<name>``,
  ``<name>.yml``, ``<name>.yaml``, ``<name>.json`` that exists (Ansible's order).
- When a setting is given under several names (``port`` and ``ansible_port``), the one
  from the higher precedence layer wins; on a tie our own name wins.
- Connection kind: an explicit ``connection`` wins; else ``docker`` when ``container``
  is set; else ``local`` when the host is named localhost/127.0.0.1/::1 and neither
  address nor port is given; else ``ssh``.  ``ssh`` defaults ``address`` to the host
  name; ``docker`` defaults ``container`` to ``address`` (Ansible's ``ansible_host``),
  then to the host name.  Unmapped ``ansible_*`` vars go to ``ConnectionSettings.extra``.
- ``Host.groups`` lists every group the host is in, ancestors included, in precedence
  order: ``all`` first, then by depth and name (a host in no group is in ``ungrouped``).
- Secrets resolve once at load; the resolved value replaces the reference in
  ``Host.vars`` and is listed in ``Host.secrets``.  Templates (``{{``) in connection
  settings are errors: inventory values are data, never rendered.
- A vars file for no known group/host, or an Ansible Vault file, is a warning
  (``Inventory.warnings``) and is skipped; anything else wrong is an error.
- Like Ansible, the pattern ``localhost`` matches an implicit local host when the
  inventory has none; it has the vars of ``all`` and ``host_vars/localhost`` but is in
  no group (``all`` does not match it).

MODULES: ``model`` (the data), ``loader`` (Inventory: loading, vars folders,
precedence), ``yaml_format``/``ini_format`` (the two file formats), ``host_ranges``
(``web[01:03]``, ``name:port``), ``drafts`` (what the readers fill, problem reports),
``settings`` (vars -> connection settings and secrets), ``patterns`` (host patterns).
"""

from __future__ import annotations

from .drafts import VarLayer, suggest_hint
from .loader import Inventory
from .model import (CONNECTION_KINDS, HOST_KEY_CHECKING, LOCAL_NAMES, SECRET_VARS,
                    SETTING_VARS, ConnectionSettings, Group, Host)

__all__ = ["ConnectionSettings", "Host", "Group", "Inventory", "CONNECTION_KINDS",
           "HOST_KEY_CHECKING", "SETTING_VARS", "SECRET_VARS",
           # not part of the contract; kept importable from here as before the split
           "LOCAL_NAMES", "VarLayer", "suggest_hint"]
