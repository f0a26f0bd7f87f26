"""Every alert of .metrics/alert_rules.yml names a playbook that exists, says in its header
when to use it, and passes `runbook check` against inventory/local.yml without a warning
(the included _*.yml files are checked through the playbooks)."""

from __future__ import annotations

import yaml

from tests.e2e.clitools import Cli
from tests.e2e_playbooks.conftest import LOCAL_INVENTORY, PLAYBOOKS, ROOT


def alert_playbooks() -> dict[str, str]:
    rules = yaml.safe_load((ROOT / ".metrics" / "alert_rules.yml").read_text())
    return {r["alert"]: r["annotations"]["runbook"] for g in rules["groups"] for r in g["rules"]}


def test_every_alert_has_its_playbook_with_a_header():
    for alert, path in alert_playbooks().items():
        playbook = ROOT / path
        assert playbook.exists(), f"{alert}: {path} is missing"
        header = playbook.read_text().split("\nname:", 1)[0]
        assert f"Alert: {alert} " in header, f"{path}: the header comment does not name {alert}"
        for word in ("What it does", "It will not", "--yes"):
            assert word in header, f"{path}: the header comment lacks {word!r}"


def test_playbooks_check_clean_against_the_local_inventory(tmp_path):
    result = Cli(tmp_path)("check", str(PLAYBOOKS), "-i", str(LOCAL_INVENTORY))
    assert result.code == 0, result
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert all(line.startswith("ok: ") for line in lines), lines     # no warning, no error
    checked = {line.split()[1] for line in lines}
    assert checked == {str(ROOT / p) for p in alert_playbooks().values()}, lines
