"""The Compose stack (deploy/compose.yaml and deploy/.env.example): its shape, no secret in the file, and only
variables the portal reads. tools/deploy_checks.py validates it against the Compose specification's schema."""

from __future__ import annotations

import re
from typing import Any

from portal.cli import build_parser
from tests.deploy.manifests import AWS_VARIABLES, DEPLOY, IMAGE_UID, compose, secret_variables, setting_variables

PORTAL_SERVICES = ("migrate", "accounts", "imports", "notify", "bot")
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")
EXAMPLE_LINE = re.compile(r"^#?([A-Z][A-Z0-9_]*)=(.*)$")


def example_variables() -> dict[str, str]:
    """Variables .env.example sets or shows commented out, with their example values."""
    found = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        match = EXAMPLE_LINE.match(line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def environments(stack: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {name: {k: str(v) for k, v in (service.get("environment") or {}).items()}
            for name, service in stack["services"].items()}


def test_postgresql_with_a_healthcheck_and_a_named_volume() -> None:
    stack = compose()
    postgres = stack["services"]["postgres"]
    assert re.match(r"^postgres:16(\.\d+)?(-\w+)?$", postgres["image"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    [volume] = postgres["volumes"]
    name = volume.split(":")[0]
    assert name in stack["volumes"], "a named volume, not a host folder"


def test_one_shot_migration_that_every_other_process_waits_for() -> None:
    stack = compose()
    services = stack["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"] and migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["environment"]["PORTAL_MIGRATE"] == "auto"
    for name in PORTAL_SERVICES[1:]:
        service = services[name]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name
        assert service["environment"]["PORTAL_MIGRATE"] == "never", name


def test_processes_run_the_images_commands_locked_down() -> None:
    services = compose()["services"]
    commands = {}
    for name in PORTAL_SERVICES:
        service = services[name]
        args = build_parser().parse_args(service["command"])
        commands[name] = (args.command, getattr(args, "service", None))
        assert service["user"] == f"{IMAGE_UID}:{IMAGE_UID}"
        assert service["read_only"] is True and "/tmp" in service["tmpfs"]
        assert service["cap_drop"] == ["ALL"]
        assert service["stop_signal"] == "SIGTERM"
        assert service["image"].startswith("${") or not service["image"].endswith(":latest")
    assert commands == {"migrate": ("migrate", None), "accounts": ("serve", "accounts"),
                        "imports": ("serve", "imports"), "notify": ("serve", "notify"), "bot": ("bot", None)}


def test_replicas_listen_on_their_own_address_and_dial_every_replica_by_name() -> None:
    services = compose()["services"]
    ports = {"accounts": 50051, "imports": 50052, "notify": 50053}
    for name, port in ports.items():
        env = services[name]["environment"]
        assert env["PORTAL_LISTEN"] == f"0.0.0.0:{port}"
        assert env[f"PORTAL_{name.upper()}_ADDR"] == f"dns:///{name}:{port}"
    assert services["notify"]["deploy"]["replicas"] == 2
    bot = services["bot"]
    assert bot["environment"]["PORTAL_BOT_PORT"] == "3000"
    assert any(str(p).endswith(":3000") for p in bot["ports"]), "the bot's port is published for Slack"
    assert "healthz" in " ".join(bot["healthcheck"]["test"])
    assert any(str(p).endswith(":8080") for p in services["accounts"]["ports"]), "the parents' pages"


def test_a_mail_catcher_for_trials() -> None:
    services = compose()["services"]
    catchers = [name for name, s in services.items() if "mailpit" in s.get("image", "")]
    assert catchers
    host = example_variables()["PORTAL_SMTP_HOST"]
    assert host in catchers, ".env.example points trials at the mail catcher"


def test_no_secret_value_in_the_file() -> None:
    secrets = secret_variables() | {"POSTGRES_PASSWORD"}
    for name, env in environments(compose()).items():
        for variable, value in env.items():
            if variable in secrets:
                assert INTERPOLATION.search(value), f"{name}: {variable} has an inline value"
                literal = INTERPOLATION.sub("", value)
                assert not re.search(r":[^@/]+@", literal), f"{name}: {variable} embeds a password"
    text = (DEPLOY / "compose.yaml").read_text()
    assert not re.search(r"(?i)(xox[abp]-|BEGIN [A-Z ]*PRIVATE KEY)", text)


def test_every_variable_is_one_the_portal_reads_and_is_documented() -> None:
    known = setting_variables() | AWS_VARIABLES
    example = example_variables()
    for name, env in environments(compose()).items():
        for variable in env:
            if variable.startswith("PORTAL_") or variable.startswith("SLACK_"):
                assert variable in known, f"{name} sets {variable}, which is not a setting"
    for variable in example:
        if variable.startswith(("PORTAL_", "SLACK_", "AWS_")):
            assert variable in known, f".env.example documents {variable}, which is not a setting"
    text = (DEPLOY / "compose.yaml").read_text()
    for match in INTERPOLATION.finditer(text):
        assert match.group(1) in example, f"compose.yaml uses ${{{match.group(1)}}}; .env.example must document it"
        if match.group(2) == ":?" and match.group(1) in secret_variables() | {"POSTGRES_PASSWORD"}:
            assert not example[match.group(1)], f"{match.group(1)} is a secret: each site fills it in"


def test_the_example_explains_every_variable() -> None:
    lines = (DEPLOY / ".env.example").read_text().splitlines()
    for number, line in enumerate(lines):
        if not EXAMPLE_LINE.match(line):
            continue
        before = number - 1
        while before >= 0 and EXAMPLE_LINE.match(lines[before]):
            before -= 1
        assert before >= 0 and lines[before].startswith("#") and not EXAMPLE_LINE.match(lines[before]), \
            f".env.example line {number + 1} ({line}) has no comment above its group"
    assert all(not value for name, value in example_variables().items() if name in secret_variables())
