"""What the deploy tests read: the rendered Kubernetes overlays, the Compose file, the settings' variable names."""

from __future__ import annotations

import shutil
import subprocess
import typing
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from plumbing.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# The uid the image runs as (deploy/docker/Dockerfile), which Compose and Kubernetes name too.
IMAGE_UID = 10001
# Variables some part of the portal reads that are not PORTAL_* settings (the AWS SDK's own).
AWS_VARIABLES = {"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"}


def setting_variables() -> set[str]:
    """Every environment variable Settings reads (PORTAL_* plus Slack's own names)."""
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if alias is not None and hasattr(alias, "choices"):
            names.update(str(choice) for choice in alias.choices)
        else:
            names.add(f"PORTAL_{name.upper()}")
    return names


def secret_variables() -> set[str]:
    """Variables whose values are secrets: every SecretStr setting, the database URL (it holds a password), and
    the AWS secret key."""
    names = {"PORTAL_DATABASE_URL", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN"}
    for name, field in Settings.model_fields.items():
        if SecretStr in typing.get_args(field.annotation) or field.annotation is SecretStr:
            alias = field.validation_alias
            if alias is not None and hasattr(alias, "choices"):
                names.update(str(choice) for choice in alias.choices)
            else:
                names.add(f"PORTAL_{name.upper()}")
    return names


def kubectl_available() -> bool:
    return shutil.which("kubectl") is not None


@cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    out = subprocess.run(["kubectl", "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def of_kind(objects: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def named(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    found = [obj for obj in of_kind(objects, kind) if obj["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} named {name}, found {len(found)}"
    return found[0]


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))
