"""The container image's recipe (deploy/docker/Dockerfile; hadolint lints it in tools/deploy_checks.py): one
image for every process, built in two stages, non-root, read-only friendly, and a build context without local
data or secrets."""

from __future__ import annotations

import fnmatch
import json
import re

from portal.cli import build_parser
from tests.deploy.manifests import DEPLOY, IMAGE_UID, ROOT

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in joined]


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def test_two_stages_on_the_official_slim_python() -> None:
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M)
    assert default and re.match(r"^python:3\.(1[1-9])(\.\d+)?-slim(-\w+)?$", default.group(1))
    builder, runtime = stages()
    assert builder[0][1] == "${PYTHON_IMAGE} AS builder" and runtime[0][1] == "${PYTHON_IMAGE} AS runtime"


def test_the_builder_generates_the_grpc_code_before_building_wheels() -> None:
    builder, _runtime = stages()
    runs = [args for name, args in builder if name == "RUN"]
    generate = next(i for i, args in enumerate(runs) if "tools/gen_protos.py --out ." in args)
    assert "pip wheel" in runs[generate] and runs[generate].index("gen_protos") < runs[generate].index("pip wheel")
    copied = [args for name, args in builder if name == "COPY"]
    assert any(args.startswith("protos/") for args in copied)


def test_the_runtime_installs_from_wheels_without_keeping_them_or_a_compiler() -> None:
    _builder, runtime = stages()
    runs = " ".join(args for name, args in runtime if name == "RUN")
    assert "--mount=type=bind,from=builder,source=/wheels" in runs and "--no-index" in runs
    assert not re.search(r"\b(gcc|build-essential|apt-get install)\b", runs)
    assert not [args for name, args in runtime if name == "COPY" and "wheels" in args]
    env = " ".join(args for name, args in runtime if name == "ENV")
    assert "PIP_NO_CACHE_DIR=1" in env and "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PORTAL_DATA_DIR=/var/lib/portal" in env


def test_non_root_with_a_fixed_uid_stopping_on_sigterm() -> None:
    _builder, runtime = stages()
    last = {name: args for name, args in runtime}
    assert last["USER"] == f"{IMAGE_UID}:{IMAGE_UID}"
    assert last["STOPSIGNAL"] == "SIGTERM"
    assert json.loads(last["ENTRYPOINT"]) == ["portal"]
    # Without arguments the image prints the commands; each process names its own (portal serve accounts, ...).
    assert json.loads(last["CMD"]) == ["--help"]
    for command in (["serve", "accounts"], ["serve", "imports"], ["serve", "notify"], ["bot"], ["migrate"]):
        build_parser().parse_args(command)
    labels = " ".join(args for name, args in runtime if name == "LABEL")
    for key in ("title", "description", "version", "revision", "created", "base.name"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    runs = " ".join(args for name, args in runtime if name == "RUN")
    assert f"--uid {IMAGE_UID}" in runs and "install -d -o 10001 -g 10001" in runs


def test_the_build_context_holds_only_what_the_builder_copies() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "deny everything, then allow what the image needs"

    def included(path: str) -> bool:
        verdict = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            body = pattern[1:] if negate else pattern
            body = body.rstrip("/")
            if fnmatch.fnmatch(path, body) or path.startswith(body + "/") or fnmatch.fnmatch(path, body + "/*"):
                verdict = negate
        return verdict

    builder, _runtime = stages()
    for name, args in builder:
        if name == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert included(source.rstrip("/")), f"COPY {source} is excluded by .dockerignore"
    for private in (".venv", "var", ".git", "deploy/.env", "portal/accounts", "build", "tests"):
        assert not included(private), f"{private} must stay out of the build context"


def test_the_release_is_named_alike_everywhere() -> None:
    """The image's version label, the tag Compose and the overlays run, and the package version agree."""
    import tomllib

    import yaml

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert re.search(rf"^ARG VERSION={re.escape(version)}$", DOCKERFILE.read_text(), re.M)
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert compose["x-portal"]["image"].endswith(f":{version}}}")
    assert f"PARENT_PORTAL_IMAGE=parent-portal:{version}" in (DEPLOY / ".env.example").read_text()
    for kustomization in (DEPLOY / "k8s").rglob("kustomization.yaml"):
        for image in yaml.safe_load(kustomization.read_text()).get("images", []):
            assert image["newTag"] == version, kustomization
