"""Prove the deploy files offline (no container engine or cluster runs here); `make deploy-check` runs it.

1. hadolint lints deploy/docker/Dockerfile (every rule on, failing from the "style" level up);
2. check-jsonschema validates deploy/compose.yaml against the Compose specification's JSON schema;
3. `kubectl kustomize` renders each overlay, and kubernetes-validate checks every rendered object (and the
   documented secret.example.yaml) against the Kubernetes schemas in strict mode (unknown fields are errors), for
   the oldest Kubernetes these manifests support and the newest the validator knows. Where kubectl is missing,
   one line says the render was skipped.

The rules on what the manifests contain (probes, security context, tags, secrets...) are tests:
tests/deploy/test_kubernetes.py and tests/deploy/test_compose.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEPLOY = ROOT / "deploy"
OVERLAYS = ("small", "district")
# Native gRPC probes are GA from 1.27; PodDisruptionBudget policy/v1 and HPA autoscaling/v2 are older. The oldest
# release still supported upstream when these manifests were written:
OLDEST_KUBERNETES = "1.30.0"


def _run(name: str, command: list[str]) -> bool:
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    took = time.monotonic() - started
    if done.returncode != 0:
        print(f"{name}: FAILED ({took:.1f} s)")
        print((done.stdout + done.stderr).rstrip())
        return False
    print(f"{name}: ok ({took:.1f} s)")
    return True


def render(overlay: str) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize` renders for an overlay (raises CalledProcessError on a render error)."""
    import yaml

    out = subprocess.run(["kubectl", "kustomize", str(DEPLOY / "k8s" / "overlays" / overlay)], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _validate(name: str, objects: list[dict[str, Any]]) -> bool:
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    started = time.monotonic()
    failures = []
    versions = sorted({OLDEST_KUBERNETES, latest_version()})
    for version in versions:
        for obj in objects:
            label = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except Exception as exc:
                failures.append(f"  {label} (Kubernetes {version}): {getattr(exc, 'message', exc)}")
    took = time.monotonic() - started
    if failures:
        print(f"{name}: FAILED ({took:.1f} s)", *failures, sep="\n")
        return False
    print(f"{name}: ok, {len(objects)} objects valid in strict mode for Kubernetes {', '.join(versions)} "
          f"({took:.1f} s)")
    return True


def main() -> int:
    import yaml

    ok = _run("hadolint deploy/docker/Dockerfile",
              [str(BIN / "hadolint"), "--failure-threshold", "style", str(DEPLOY / "docker" / "Dockerfile")])
    ok &= _run("compose spec deploy/compose.yaml",
               [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                str(DEPLOY / "compose.yaml")])
    if shutil.which("kubectl") is None:
        print("kubectl not found: Kubernetes render and validation skipped")
    else:
        for overlay in OVERLAYS:
            try:
                objects = render(overlay)
            except subprocess.CalledProcessError as exc:
                print(f"kustomize overlays/{overlay}: FAILED\n{exc.stderr.rstrip()}")
                ok = False
                continue
            ok &= _validate(f"kustomize overlays/{overlay}", objects)
    example = [doc for doc in yaml.safe_load_all((DEPLOY / "k8s" / "secret.example.yaml").read_text()) if doc]
    ok &= _validate("secret.example.yaml", example)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
