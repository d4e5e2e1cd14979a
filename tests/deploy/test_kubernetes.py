"""The rules the Kubernetes manifests must keep, checked on what `kubectl kustomize` renders for each overlay (so
a change to the base or an overlay cannot silently break them). tools/deploy_checks.py validates the same objects
against the Kubernetes schemas; these tests check what a schema cannot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from plumbing.config import Settings
from plumbing.server import DRAIN_SECONDS, GRACE_SECONDS, LIVENESS_SERVICE
from portal.cli import build_parser
from tests.deploy.manifests import (
    AWS_VARIABLES,
    DEPLOY,
    IMAGE_UID,
    kubectl_available,
    named,
    of_kind,
    rendered,
    secret_variables,
    setting_variables,
)

pytestmark = pytest.mark.skipif(not kubectl_available(), reason="kubectl is not installed: no kustomize render")

OVERLAYS = ["small", "district"]
SERVICES = {"accounts": 50051, "imports": 50052, "notify": 50053}
WORKLOADS = (*SERVICES, "bot")
WEB_ROUTES = ("/set-password", "/set-password/new-link", "/login", "/login/code", "/forgot-password", "/two-factor",
              "/change-password", "/account", "/logout", "/static/portal.css", "/")


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def objects(overlay: str) -> tuple[dict[str, Any], ...]:
    return rendered(overlay)


def settings_map(objects: tuple[dict[str, Any], ...]) -> dict[str, str]:
    [config] = [c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].startswith("portal-settings")]
    return dict(config["data"])


def pod_specs(objects: tuple[dict[str, Any], ...]) -> list[tuple[str, dict[str, Any]]]:
    kinds = ("Deployment", "Job")
    return [(obj["metadata"]["name"], obj["spec"]["template"]["spec"]) for obj in objects if obj["kind"] in kinds]


def container(objects: tuple[dict[str, Any], ...], name: str) -> dict[str, Any]:
    [only] = named(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env_of(item: dict[str, Any]) -> dict[str, Any]:
    return {entry["name"]: entry for entry in item.get("env", [])}


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def test_every_process_runs_an_image_command_the_tests_run(objects: tuple[dict[str, Any], ...]) -> None:
    parser = build_parser()
    commands = {}
    for name, spec in pod_specs(objects):
        for item in spec["containers"]:
            assert "command" not in item, f"{name}: the image's entrypoint is `portal`; set args only"
            args = build_parser().parse_args(item["args"])
            commands[name] = args.command
    assert commands == {"accounts": "serve", "imports": "serve", "notify": "serve", "bot": "bot",
                        "migrate": "migrate"}
    assert parser.parse_args(["serve", "accounts"]).service == "accounts"


def test_images_are_pinned_never_latest(objects: tuple[dict[str, Any], ...]) -> None:
    for name, spec in pod_specs(objects):
        for item in spec["containers"]:
            image = item["image"]
            repository, _, tag = image.rpartition(":")
            assert repository and "/" not in tag and tag, f"{name}: image {image!r} has no tag"
            assert tag != "latest", f"{name}: image {image!r} uses latest"


def test_pods_are_locked_down(objects: tuple[dict[str, Any], ...]) -> None:
    for name, spec in pod_specs(objects):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == IMAGE_UID, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for item in spec["containers"]:
            context = item["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert "privileged" not in context or context["privileged"] is False, name


def test_the_only_writable_places_are_tmp_and_the_data_dir(objects: tuple[dict[str, Any], ...]) -> None:
    data_dir = settings_map(objects)["PORTAL_DATA_DIR"]
    for name, spec in pod_specs(objects):
        empty_dirs = {volume["name"] for volume in spec["volumes"] if "emptyDir" in volume}
        for item in spec["containers"]:
            writable = {m["mountPath"] for m in item["volumeMounts"]
                        if m["name"] in empty_dirs and not m.get("readOnly", False)}
            assert writable == {"/tmp", data_dir}, f"{name}: writable mounts {writable}"
        for volume in spec["volumes"]:
            assert "hostPath" not in volume, f"{name}: hostPath volume {volume['name']}"


def test_every_container_has_requests_and_limits(objects: tuple[dict[str, Any], ...]) -> None:
    for name, spec in pod_specs(objects):
        for item in spec["containers"]:
            resources = item["resources"]
            for side in ("requests", "limits"):
                assert set(resources[side]) >= {"cpu", "memory"}, f"{name}: {side} incomplete"


def test_grpc_services_have_native_grpc_probes_on_the_right_port(objects: tuple[dict[str, Any], ...]) -> None:
    settings = settings_map(objects)
    tls = "PORTAL_TLS_CERT" in settings
    for name, port in SERVICES.items():
        item = container(objects, name)
        listen = env_of(item)["PORTAL_LISTEN"]["value"]
        assert port_of(listen) == port
        if tls:
            # The kubelet's gRPC probes speak no TLS: they ask the plaintext health-only port.
            expected = port_of(settings["PORTAL_HEALTH_LISTEN"])
            assert expected != port
        else:
            expected = port
        assert expected in {p["containerPort"] for p in item["ports"]}, name
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            spec = item[probe]
            assert set(spec) & {"exec", "httpGet", "tcpSocket"} == set(), f"{name}: {probe} must be gRPC"
            assert spec["grpc"]["port"] == expected, f"{name}: {probe} on {spec['grpc']['port']}"
        # Readiness asks for the whole service (database, schema at head); liveness only whether it answers.
        assert item["readinessProbe"]["grpc"].get("service", "") == ""
        assert item["startupProbe"]["grpc"].get("service", "") == ""
        assert item["livenessProbe"]["grpc"]["service"] == LIVENESS_SERVICE
        # Waiting for the migration Job is part of starting: minutes, not seconds.
        startup = item["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, name


def test_the_bot_is_probed_on_healthz(objects: tuple[dict[str, Any], ...]) -> None:
    item = container(objects, "bot")
    port = int(settings_map(objects)["PORTAL_BOT_PORT"])
    named_ports = {p["name"]: p["containerPort"] for p in item["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        check = item[probe]["httpGet"]
        assert check["path"] == "/healthz"
        assert named_ports.get(check["port"], check["port"]) == port


def test_grace_period_outlasts_the_processes_own_shutdown(objects: tuple[dict[str, Any], ...]) -> None:
    # plumbing/server.py: DRAIN_SECONDS still serving while clients leave, GRACE_SECONDS for in-flight calls, then
    # as long again for background loops; plus any preStop delay before SIGTERM arrives.
    for name, spec in pod_specs(objects):
        pre_stop = 0
        for item in spec["containers"]:
            hook = item.get("lifecycle", {}).get("preStop", {})
            if "exec" in hook:
                assert hook["exec"]["command"][0] == "sleep"
                pre_stop = max(pre_stop, int(hook["exec"]["command"][1]))
        needed = pre_stop + (DRAIN_SECONDS + 2 * GRACE_SECONDS if name in SERVICES else GRACE_SECONDS)
        assert spec["terminationGracePeriodSeconds"] > needed, f"{name}: grace period too short"


def test_grpc_services_are_headless_and_dialled_through_dns(objects: tuple[dict[str, Any], ...]) -> None:
    settings = settings_map(objects)
    namespace = {obj["metadata"].get("namespace") for obj in objects if obj["kind"] != "Namespace"}
    assert len(namespace) == 1
    [ns] = namespace
    for name, port in SERVICES.items():
        service = named(objects, "Service", name)
        assert service["spec"]["clusterIP"] == "None", f"{name}: a ClusterIP pins each client to one pod"
        assert [p["port"] for p in service["spec"]["ports"]] == [port]
        selector = service["spec"]["selector"]
        labels = named(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()
        assert settings[f"PORTAL_{name.upper()}_ADDR"] == f"dns:///{name}.{ns}.svc.cluster.local:{port}"


def test_services_wait_for_the_migration_job(objects: tuple[dict[str, Any], ...]) -> None:
    assert settings_map(objects)["PORTAL_MIGRATE"] == "never"
    for name in WORKLOADS:
        assert "PORTAL_MIGRATE" not in env_of(container(objects, name))
    [job] = of_kind(objects, "Job")
    [item] = job["spec"]["template"]["spec"]["containers"]
    assert item["args"] == ["migrate"]
    assert env_of(item)["PORTAL_MIGRATE"]["value"] == "auto"
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")


def test_settings_are_real_settings_and_hold_no_secret(objects: tuple[dict[str, Any], ...]) -> None:
    known = setting_variables() | AWS_VARIABLES
    secrets = secret_variables()
    for key, value in settings_map(objects).items():
        assert key in known, f"ConfigMap sets {key}, which no part of the portal reads"
        assert key not in secrets, f"ConfigMap holds the secret {key}"
        if key.startswith("PORTAL_TLS_"):
            assert value.startswith("/"), "TLS settings are paths to mounted files"
    assert not of_kind(objects, "Secret"), "Secrets are referenced by name only, never rendered"
    for name, spec in pod_specs(objects):
        for item in spec["containers"]:
            for variable, entry in env_of(item).items():
                assert variable in known, f"{name} sets {variable}, which no part of the portal reads"
                if variable in secrets:
                    assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], f"{name}: inline {variable}"


def test_secrets_referenced_are_documented_in_the_example_in_no_kustomization(
        objects: tuple[dict[str, Any], ...]) -> None:
    example = {doc["metadata"]["name"]: doc for doc in
               yaml.safe_load_all((DEPLOY / "k8s" / "secret.example.yaml").read_text()) if doc}
    referenced: set[str] = set()
    for name, spec in pod_specs(objects):
        for volume in spec["volumes"]:
            if "secret" in volume:
                referenced.add(volume["secret"]["secretName"])
        for item in spec["containers"]:
            for source in item.get("envFrom", []):
                if "secretRef" in source:
                    referenced.add(source["secretRef"]["name"])
            for entry in item.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced.add(ref["name"])
                    assert ref["key"] in example[ref["name"]]["stringData"], f"{name}: undocumented key {ref['key']}"
    assert referenced <= set(example), f"undocumented Secrets: {referenced - set(example)}"
    known = setting_variables() | AWS_VARIABLES
    assert set(example["portal-secrets"]["stringData"]) <= known
    for kustomization in (DEPLOY / "k8s").rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        listed = [*spec.get("resources", []), *spec.get("components", []),
                  *(patch.get("path", "") for patch in spec.get("patches", []))]
        assert not [entry for entry in listed if "secret" in Path(entry).name], kustomization


def route(paths: list[dict[str, Any]], request_path: str) -> dict[str, Any] | None:
    """The backend an Ingress sends a request path to: an Exact match, else the longest Prefix match (by path
    element, as the Ingress specification says)."""
    for path in paths:
        if path["pathType"] == "Exact" and path["path"] == request_path:
            return dict(path["backend"]["service"])
    best: dict[str, Any] | None = None
    for path in paths:
        prefix = path["path"].rstrip("/")
        if path["pathType"] == "Prefix" and (request_path == prefix or request_path.startswith(prefix + "/")) and (
                best is None or len(path["path"]) > len(best["path"])):
            best = path
    return dict(best["backend"]["service"]) if best else None


def test_ingress_routes_slack_and_the_parents_pages_with_tls(objects: tuple[dict[str, Any], ...]) -> None:
    settings = settings_map(objects)
    [ingress] = of_kind(objects, "Ingress")
    assert ingress["spec"]["tls"] and ingress["spec"]["tls"][0]["secretName"]
    assert any(key.startswith("cert-manager.io/") for key in ingress["metadata"]["annotations"])
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] in ingress["spec"]["tls"][0]["hosts"]
    assert settings["PORTAL_PUBLIC_URL"] == f"https://{rule['host']}"
    for request_path in ("/slack/events", *WEB_ROUTES):
        backend = route(rule["http"]["paths"], request_path)
        assert backend is not None, f"{request_path} reaches nothing"
        service = named(objects, "Service", backend["name"])
        [port] = [p for p in service["spec"]["ports"] if p["name"] == backend["port"]["name"]]
        target = "bot" if request_path == "/slack/events" else "accounts"
        assert service["spec"]["selector"]["app.kubernetes.io/name"] == target, request_path
        assert service["spec"].get("clusterIP") != "None"
        expected = settings["PORTAL_BOT_PORT"] if target == "bot" else settings["PORTAL_WEB_PORT"]
        item = container(objects, target)
        named_ports = {p["name"]: p["containerPort"] for p in item["ports"]}
        assert named_ports[port["targetPort"]] == int(expected)
    assert route(rule["http"]["paths"], "/slack/events/other") is not None  # the pages' 404, not the bot
    assert route(rule["http"]["paths"], "/slack/events/other")["name"] == "accounts-web"


def test_only_the_portals_pods_reach_the_grpc_ports(objects: tuple[dict[str, Any], ...]) -> None:
    policies = of_kind(objects, "NetworkPolicy")
    grpc_policies = [p for p in policies
                     if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component")
                     == "grpc-service"]
    assert len(grpc_policies) == 1
    [policy] = grpc_policies
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "parent-portal"}}}]
    assert {p["port"] for p in rule["ports"]} == set(SERVICES.values())
    for name in SERVICES:
        labels = named(objects, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "grpc-service"
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            assert obj["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "parent-portal"
    # Nothing else opens the gRPC ports: other policies on those pods allow only the HTTP ports.
    for other in policies:
        if other is policy:
            continue
        for rule in other["spec"].get("ingress", []):
            assert not {p["port"] for p in rule.get("ports", [])} & set(SERVICES.values())


def test_small_runs_one_of_everything() -> None:
    objects = rendered("small")
    for name in WORKLOADS:
        assert named(objects, "Deployment", name)["spec"]["replicas"] == 1
    assert not of_kind(objects, "HorizontalPodAutoscaler")


def test_district_runs_replicas_autoscaling_and_disruption_budgets() -> None:
    objects = rendered("district")
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(objects, "HorizontalPodAutoscaler")}
    assert set(hpas) == {"accounts", "imports"}
    for name in WORKLOADS:
        deployment = named(objects, "Deployment", name)
        if name in hpas:
            assert "replicas" not in deployment["spec"], f"{name}: its autoscaler owns replicas"
            assert hpas[name]["spec"]["minReplicas"] >= 2
            assert hpas[name]["spec"]["maxReplicas"] > hpas[name]["spec"]["minReplicas"]
        else:
            assert deployment["spec"]["replicas"] >= 2, name
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        budgets = [b for b in of_kind(objects, "PodDisruptionBudget")
                   if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(budgets) == 1, f"{name}: one disruption budget"
        spec = budgets[0]["spec"]
        assert spec.get("maxUnavailable") == 1 or spec.get("minAvailable") == 1
    assert "PORTAL_TLS_CERT" in settings_map(objects), "a district runs mutual TLS between its processes"


def test_settings_known_to_the_portal_load(objects: tuple[dict[str, Any], ...], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The ConfigMap's values are accepted by the settings themselves (bar the files only the pods have)."""
    for key, value in settings_map(objects).items():
        if key.startswith("PORTAL_TLS_") or key == "PORTAL_DATA_DIR":
            continue
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.migrate == "never" and settings.blob_url
