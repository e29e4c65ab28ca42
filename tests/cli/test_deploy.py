"""`haven deploy -f registry.yaml` against a fake management API that keeps registries'
state: what it creates and changes, in which order, that a second run changes nothing,
`--what-if`, and the file's mistakes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import Haven
from .fake_haven import Answer, FakeHaven, Recorded, error
from .test_commands import one_error_line


class Registries:
    """Registries kept by the fake, with the server's SKU rules."""

    def __init__(self, fake: FakeHaven, names: list[str]) -> None:
        self.fake = fake
        self.state: dict[str, dict[str, Any]] = {}
        fake.route("POST", "/api/registries", self.create)
        for name in names:
            base = f"/api/registries/{name}"
            fake.route("GET", base, lambda r, n=name: self.show(n))
            fake.route("PATCH", base, lambda r, n=name: self.update(n, r))
            fake.route("POST", f"{base}/networkRules", lambda r, n=name: self.add(n, r))
            fake.route("DELETE", f"{base}/networkRules", lambda r, n=name: self.remove(n, r))

    def put(self, name: str, sku: str = "Standard", **settings: Any) -> None:
        rules = settings.pop("ipRules", [])
        self.state[name] = {
            "id": f"/registries/{name}",
            "name": name,
            "loginServer": f"{name}.example.com",
            "sku": {"name": sku, "tier": sku},
            "adminUserEnabled": False,
            "anonymousPullEnabled": False,
            "networkRuleSet": {
                "defaultAction": settings.pop("defaultAction", "Allow"),
                "ipRules": [{"action": "Allow", "ipAddressOrRange": r} for r in rules],
            },
            **settings,
        }

    def show(self, name: str) -> Answer:
        if name not in self.state:
            return error(404, "NotFound", f"registry {name} not found")
        return Answer(200, self.state[name])

    def create(self, request: Recorded) -> Answer:
        body = request.json()
        name = body["name"].lower()
        if name in self.state:
            return error(409, "AlreadyInUse", "taken")
        self.put(name, body.get("sku", "Standard"))
        return Answer(201, self.state[name])

    def update(self, name: str, request: Recorded) -> Answer:
        registry, body = self.state[name], request.json()
        sku = body.get("sku", registry["sku"]["name"])
        anonymous = body.get("anonymousPullEnabled", registry["anonymousPullEnabled"])
        action = body.get("networkRuleSet", {}).get(
            "defaultAction", registry["networkRuleSet"]["defaultAction"]
        )
        if anonymous and sku == "Basic":
            return error(400, "SkuNotSupported", "anonymous pull needs Standard or Premium")
        if action == "Deny" and sku != "Premium":
            return error(400, "SkuNotSupported", "network rules need Premium")
        registry["sku"] = {"name": sku, "tier": sku}
        registry["anonymousPullEnabled"] = anonymous
        registry["adminUserEnabled"] = body.get("adminUserEnabled", registry["adminUserEnabled"])
        registry["networkRuleSet"]["defaultAction"] = action
        return Answer(200, registry)

    def add(self, name: str, request: Recorded) -> Answer:
        registry = self.state[name]
        if registry["sku"]["name"] != "Premium":
            return error(400, "SkuNotSupported", "network rules are available on Premium only")
        rules = registry["networkRuleSet"]["ipRules"]
        rules.append({"action": "Allow", "ipAddressOrRange": request.json()["ipAddressOrRange"]})
        return Answer(200, registry["networkRuleSet"])

    def remove(self, name: str, request: Recorded) -> Answer:
        value = request.query["ipAddressOrRange"][0]
        rules = self.state[name]["networkRuleSet"]["ipRules"]
        self.state[name]["networkRuleSet"]["ipRules"] = [
            r for r in rules if r["ipAddressOrRange"] != value
        ]
        return Answer(204)

    def changes_sent(self) -> list[tuple[str, str]]:
        return [
            (r.method, r.path)
            for r in self.fake.api_requests()
            if r.method in ("POST", "PATCH", "DELETE")
        ]

    def requests_after_login(self) -> list[Recorded]:
        return [r for r in self.fake.api_requests() if r.path != "/api/me"]


FILE = """
# Two registries, as a team would keep them in git.
registries:
  - name: teamRegistry
    sku: premium
    adminUserEnabled: true
    networkRuleSet:
      defaultAction: Deny
      ipRules:
        - 203.0.113.0/24
        - ipAddressOrRange: 198.51.100.7
          action: Allow
  - name: publicimages
    sku: Standard
    anonymousPullEnabled: true
"""


@pytest.fixture
def registries(logged_in: FakeHaven) -> Registries:
    return Registries(logged_in, ["teamregistry", "publicimages"])


def change(
    registry: str, action: str, property_: str | None, old: Any = None, new: Any = None
) -> dict[str, Any]:
    return {"registry": registry, "action": action, "property": property_, "from": old, "to": new}


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    return str(path)


def test_deploy_creates_then_a_second_run_changes_nothing(
    haven: Haven, registries: Registries, tmp_path: Path
) -> None:
    path = write(tmp_path, FILE)
    result = haven("deploy", "-f", path)
    assert result.exit_code == 0, result.stderr
    team, public, rules = "teamregistry", "publicimages", "networkRuleSet.ipRules"
    assert json.loads(result.stdout) == [
        change(team, "create", None),
        change(team, "set", "sku", None, "Premium"),
        change(team, "set", "adminUserEnabled", None, True),
        change(team, "set", "defaultAction", None, "Deny"),
        change(team, "add", rules, None, "203.0.113.0/24"),
        change(team, "add", rules, None, "198.51.100.7/32"),
        change(public, "create", None),
        change(public, "set", "sku", None, "Standard"),
        change(public, "set", "anonymousPullEnabled", None, True),
    ]
    assert registries.changes_sent() == [
        ("POST", "/api/registries"),
        ("PATCH", "/api/registries/teamregistry"),
        ("POST", "/api/registries/teamregistry/networkRules"),
        ("POST", "/api/registries/teamregistry/networkRules"),
        ("POST", "/api/registries", ),
        ("PATCH", "/api/registries/publicimages"),
    ]  # fmt: skip
    creates = [r.json() for r in registries.fake.requests if r.path == "/api/registries"]
    assert creates == [
        {"name": "teamRegistry", "sku": "Premium"},
        {"name": "publicimages", "sku": "Standard"},
    ]
    assert registries.fake.last("PATCH", "/api/registries/teamregistry").json() == {
        "adminUserEnabled": True,
        "networkRuleSet": {"defaultAction": "Deny"},
    }
    team = registries.state["teamregistry"]
    assert [r["ipAddressOrRange"] for r in team["networkRuleSet"]["ipRules"]] == [
        "203.0.113.0/24",
        "198.51.100.7/32",
    ]

    before = len(registries.changes_sent())
    again = haven("deploy", "-f", path)
    assert (again.exit_code, again.stdout) == (0, "[]\n")
    assert len(registries.changes_sent()) == before
    assert haven("deploy", "-f", path, "-o", "table").stdout == ""


def test_deploy_updates_only_what_differs_in_the_sku_rules_order(
    haven: Haven, registries: Registries, tmp_path: Path
) -> None:
    registries.put(
        "teamregistry",
        "Premium",
        adminUserEnabled=True,
        defaultAction="Deny",
        ipRules=["203.0.113.0/24", "192.0.2.1/32"],
    )
    text = """
registries:
  - name: TEAMREGISTRY
    sku: Standard
    networkRuleSet:
      defaultAction: Allow
      ipRules: [203.0.113.0/24, 198.51.100.0/24]
"""
    path = write(tmp_path, text)
    planned = haven("deploy", "-f", path, "--what-if")
    assert [
        (c["action"], c["property"], c["from"], c["to"]) for c in json.loads(planned.stdout)
    ] == [
        ("set", "sku", "Premium", "Standard"),
        ("set", "defaultAction", "Deny", "Allow"),
        ("remove", "networkRuleSet.ipRules", "192.0.2.1/32", None),
        ("add", "networkRuleSet.ipRules", None, "198.51.100.0/24"),
    ]
    # Removing comes first, adding last: here adding fails, as the server refuses IP rules
    # once the registry is no longer Premium; the error is the server's.
    result = haven("deploy", "-f", path)
    assert result.exit_code == 1
    assert one_error_line(result.stderr) == "network rules are available on Premium only"
    assert registries.changes_sent() == [
        ("DELETE", "/api/registries/teamregistry/networkRules"),
        ("PATCH", "/api/registries/teamregistry"),
        ("POST", "/api/registries/teamregistry/networkRules"),
    ]


def test_a_refusal_stops_the_deployment_with_the_servers_message(
    haven: Haven, registries: Registries, tmp_path: Path
) -> None:
    text = "registries:\n  - name: publicimages\n    sku: Basic\n    anonymousPullEnabled: true\n"
    result = haven("deploy", "-f", write(tmp_path, text))
    assert result.exit_code == 1
    assert one_error_line(result.stderr) == "anonymous pull needs Standard or Premium"


def test_what_if_plans_without_changing_anything(
    haven: Haven, registries: Registries, tmp_path: Path
) -> None:
    registries.put("publicimages", "Standard")
    result = haven("deploy", "-f", write(tmp_path, FILE), "--what-if", "-o", "table")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["REGISTRY", "ACTION", "PROPERTY", "FROM", "TO"]
    assert lines[2].split() == ["teamregistry", "create"]
    assert lines[-1].split() == ["publicimages", "set", "anonymousPullEnabled", "False", "True"]
    assert result.stderr == "WARNING: What-if: nothing was changed.\n"
    assert registries.changes_sent() == []


def test_the_file_can_come_from_stdin(haven: Haven, registries: Registries) -> None:
    result = haven("deploy", "-f", "-", input="registries:\n  - name: publicimages\n")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)[0]["action"] == "create"
    assert "publicimages" in registries.state


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("registries: [", "not valid YAML"),
        ("- name: x", "must be a mapping with one key, 'registries'"),
        ("registries: []\nextra: 1", "must be a mapping with one key, 'registries'"),
        ("registries: {name: x}", "registries: must be a list"),
        ("registries: [x]", "registries[0]: must be a mapping with at least 'name'"),
        ("registries: [{sku: Basic}]", "registries[0].name: is required"),
        ("registries: [{name: abcde, skuu: Basic}]", "registries[0]: unknown key 'skuu'"),
        ("registries: [{name: abcde, sku: Gold}]", "registries[0].sku: must be one of Basic"),
        (
            "registries: [{name: abcde, adminUserEnabled: 'yes'}]",
            "registries[0].adminUserEnabled: must be true or false",
        ),
        (
            "registries: [{name: abcde, networkRuleSet: {defaultAction: Block}}]",
            "registries[0].networkRuleSet.defaultAction: must be one of Allow, Deny",
        ),
        (
            "registries: [{name: abcde, networkRuleSet: {ipRules: [10.0.0.300]}}]",
            "registries[0].networkRuleSet.ipRules[0]: '10.0.0.300' is not an IP address",
        ),
        (
            "registries: [{name: abcde, networkRuleSet: {ipRules: [{ipAddressOrRange: 10.0.0.1, "
            "action: Deny}]}}]",
            "registries[0].networkRuleSet.ipRules[0].action: must be Allow",
        ),
        (
            "registries: [{name: abcde, networkRuleSet: {rules: []}}]",
            "registries[0].networkRuleSet: unknown key 'rules'",
        ),
        (
            "registries: [{name: abcde}, {name: ABCDE}]",
            "registries[1].name: 'ABCDE' is given twice",
        ),
    ],
)
def test_a_mistake_in_the_file_changes_nothing(
    haven: Haven, registries: Registries, tmp_path: Path, text: str, message: str
) -> None:
    result = haven("deploy", "-f", write(tmp_path, text))
    assert result.exit_code == 2, result.stderr
    assert message in one_error_line(result.stderr)
    assert registries.requests_after_login() == []


def test_a_missing_file(haven: Haven, logged_in: FakeHaven, tmp_path: Path) -> None:
    result = haven("deploy", "-f", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "does not exist" in one_error_line(result.stderr)
