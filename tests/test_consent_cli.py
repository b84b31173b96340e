"""``pulsebridge consent list|grant|revoke`` as an operator runs them (on SQLite, destinations from the environment)."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from tests.services import cli

DESTINATIONS = [
    {"name": "ehr-a", "base_url": "https://a.example/fhir"},
    {"name": "ehr-r", "base_url": "https://r.example/fhir", "consent": "required"},
]
STAMP = r"\d{4}-\d\d-\d\dT[\d:.]+\+00:00"


def test_consent_commands(tmp_path: Path) -> None:
    env = {
        "PULSEBRIDGE_DATABASE__URL": f"sqlite:///{tmp_path / 'consent.db'}",
        "PULSEBRIDGE_DESTINATIONS": orjson.dumps(DESTINATIONS).decode(),
    }
    assert cli(env, "patients", "add", "--id", "ada").returncode == 0

    listed = cli(env, "consent", "list", "ada")
    assert (listed.returncode, listed.stdout) == (
        0,
        "ehr-a\timplied\tpushed\tno decision\nehr-r\trequired\tnot pushed\tno decision\n",
    )

    granted = cli(env, "consent", "grant", "ada", "ehr-r", "--by", "Patient/ada (signed form)")
    assert granted.returncode == 0, granted.stderr
    assert re.fullmatch(rf"Patient/ada -> ehr-r: granted \(pushed; recorded by Patient/ada \(signed form\) at {STAMP}\)\n",
                        granted.stdout)  # fmt: skip
    revoked = cli(env, "consent", "revoke", "ada", "ehr-a")
    assert revoked.returncode == 0, revoked.stderr
    assert re.fullmatch(rf"Patient/ada -> ehr-a: revoked \(not pushed; recorded by cli/\S+ at {STAMP}\)\n", revoked.stdout)

    history = cli(env, "consent", "list", "ada", "--history")
    lines = history.stdout.splitlines()
    assert re.fullmatch(rf"ehr-a\timplied\tnot pushed\trevoked by cli/\S+ at {STAMP}", lines[0])
    assert re.fullmatch(rf"ehr-r\trequired\tpushed\tgranted by Patient/ada \(signed form\) at {STAMP}", lines[1])
    assert [line.split("\t")[1:3] for line in lines[2:]] == [["ehr-r", "granted"], ["ehr-a", "revoked"]]

    for args, message in [
        (("consent", "grant", "ada", "ehr-z"), "no destination 'ehr-z' is configured (configured: ehr-a, ehr-r)"),
        (("consent", "revoke", "bob", "ehr-a"), "no patient 'bob'"),
        (("consent", "grant", "ada", "ehr-a", "--by", "x\ty"), "--by"),
    ]:
        refused = cli(env, *args)
        assert refused.returncode == 2, args
        assert refused.stderr.startswith("pulsebridge: error: ")
        assert message in refused.stderr
