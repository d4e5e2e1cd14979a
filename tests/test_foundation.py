"""The shared bootstrap, seen from outside: health, reflection, the service token, TLS, configuration."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from plumbing.clients import open_channel
from plumbing.config import ConfigError, load_settings
from portal.accounts.v1 import accounts_pb2, accounts_pb2_grpc
from tests.support.certs import make_certs
from tests.support.net import free_port
from tests.support.services import make_settings, running_service

SERVICES = {
    "accounts": "portal.accounts.v1.AccountsService",
    "imports": "portal.imports.v1.ImportsService",
    "notify": "portal.notify.v1.NotifyService",
}
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_each_service_is_serving_and_reflects_its_api(service: str, settings) -> None:
    async with running_service(service, settings) as address:
        async with grpc.aio.insecure_channel(address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICES[service]), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            requests = iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            names = set()
            async for answer in stub.ServerReflectionInfo(requests, timeout=5):
                names |= {s.name for s in answer.list_services_response.service}
            assert SERVICES[service] in names
            assert "grpc.health.v1.Health" in names


async def test_calls_without_or_with_a_wrong_token_are_unauthenticated(tmp_path, sqlite_url) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    async with running_service("accounts", settings) as address:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = accounts_pb2_grpc.AccountsServiceStub(channel)
            request = accounts_pb2.GetAccountRequest(username_or_email="nobody1")
            with pytest.raises(grpc.RpcError) as missing:
                await stub.GetAccount(request, timeout=5)
            assert missing.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as wrong:
                await stub.GetAccount(request, metadata=[("authorization", "Bearer not-the-token")], timeout=5)
            assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # With the right token the call reaches the servicer (whatever it then answers, it is not a token error).
        async with open_channel(settings, "accounts") as channel:
            with pytest.raises(grpc.RpcError) as answered:
                await accounts_pb2_grpc.AccountsServiceStub(channel).GetAccount(request, timeout=5)
            assert answered.value.code() != grpc.StatusCode.UNAUTHENTICATED


async def test_mutual_tls_serves_clients_with_a_certificate_and_refuses_plaintext(tmp_path, sqlite_url) -> None:
    certs = make_certs(tmp_path / "certs")
    settings = make_settings(tmp_path, sqlite_url, tls_cert=certs.cert, tls_key=certs.key, tls_ca=certs.ca,
                             health_listen=f"127.0.0.1:{free_port()}")
    async with running_service("notify", settings) as address:
        async with open_channel(settings, "notify") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        async with grpc.aio.insecure_channel(address) as plain:
            with pytest.raises(grpc.RpcError) as refused:
                await health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(), timeout=3)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        # A client with the CA but no certificate of its own is refused too (mutual TLS).
        no_client_cert = grpc.ssl_channel_credentials(root_certificates=certs.ca.read_bytes())
        async with grpc.aio.secure_channel(address, no_client_cert) as anonymous:
            with pytest.raises(grpc.RpcError):
                await health_pb2_grpc.HealthStub(anonymous).Check(health_pb2.HealthCheckRequest(), timeout=3)
        # Kubernetes' probes speak no TLS: the health-only plaintext port answers, and only health.
        async with grpc.aio.insecure_channel(settings.health_listen) as probe:
            reply = await health_pb2_grpc.HealthStub(probe).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("PORTAL_WEB_PORT", "eighty", "PORTAL_WEB_PORT='eighty'"),
        ("PORTAL_ACCOUNTS_ADDR", "not an address", "PORTAL_ACCOUNTS_ADDR"),
        ("PORTAL_TIMEZONE", "Mars/Olympus", "IANA time zone"),
        ("PORTAL_SMTP_STARTTLS", "maybe", "PORTAL_SMTP_STARTTLS"),
        ("PORTAL_DATABASE_URL", "mysql://x", "sqlite:/// or postgresql"),
    ],
)
def test_a_bad_environment_value_is_named(monkeypatch, tmp_path, variable, value, expected) -> None:
    monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_a_bad_environment_value_stops_start_up_with_one_clear_line(tmp_path) -> None:
    env = {**os.environ, "PORTAL_DATA_DIR": str(tmp_path), "PORTAL_NOTIFY_ADDR": "nowhere"}
    result = subprocess.run([sys.executable, "-m", "portal", "serve", "notify"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "portal: configuration error: PORTAL_NOTIFY_ADDR='nowhere': expected a gRPC target such as host:port, "
        "dns:///host:port or ipv4:a:p1,b:p2"
    ]


def test_the_service_token_is_generated_once_into_the_data_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("PORTAL_SERVICE_TOKEN", raising=False)
    first = load_settings().token
    assert len(first) >= 32
    assert load_settings().token == first
    assert (tmp_path / "service-token").stat().st_mode & 0o077 == 0


def test_portal_up_brings_three_healthy_services_and_sigint_stops_them(tmp_path) -> None:
    env = {
        **os.environ,
        "PORTAL_DATA_DIR": str(tmp_path),
        "PORTAL_ACCOUNTS_ADDR": f"127.0.0.1:{free_port()}",
        "PORTAL_IMPORTS_ADDR": f"127.0.0.1:{free_port()}",
        "PORTAL_NOTIFY_ADDR": f"127.0.0.1:{free_port()}",
        "PORTAL_MAIL_SINK_PORT": str(free_port()),
        "PORTAL_WEB_PORT": str(free_port()),
        "PORTAL_LOG_FORMAT": "text",
    }
    env.pop("PORTAL_DATABASE_URL", None)
    up = subprocess.Popen([sys.executable, "-m", "portal", "up", "--no-bot"], env=env, stderr=subprocess.PIPE,
                          text=True, cwd=ROOT)
    lines: list[str] = []
    try:
        assert up.stderr is not None
        for line in up.stderr:
            lines.append(line)
            if "the portal is up" in line:
                break
        else:
            pytest.fail("portal up ended before it was up:\n" + "".join(lines))
        healthy = [line for line in lines if "is healthy at" in line]
        assert len(healthy) == 3, "".join(lines)
        started = time.monotonic()
        up.send_signal(signal.SIGINT)
        up.wait(timeout=10)
        assert time.monotonic() - started < 10
        assert up.returncode == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    rest = up.stderr.read() if up.stderr else ""
    for service in SERVICES:
        assert f"{service} stopped" in rest, rest


def test_portal_up_stops_everything_when_a_child_dies(tmp_path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PORTAL_DATA_DIR": str(tmp_path),
        "PORTAL_ACCOUNTS_ADDR": f"127.0.0.1:{free_port()}",
        "PORTAL_IMPORTS_ADDR": f"127.0.0.1:{free_port()}",
        "PORTAL_NOTIFY_ADDR": f"127.0.0.1:{port}",
        "PORTAL_MAIL_SINK_PORT": str(free_port()),
        "PORTAL_LOG_FORMAT": "text",
    }
    up = subprocess.Popen([sys.executable, "-m", "portal", "up", "--no-bot"], env=env, stderr=subprocess.PIPE,
                          text=True, cwd=ROOT)
    try:
        assert up.stderr is not None
        for line in up.stderr:
            if "the portal is up" in line:
                break
        # Kill the notify process (the one listening on `port`) from outside, as a crash would.
        pids = subprocess.run(["pgrep", "-f", "portal serve notify", "-P", str(up.pid)], capture_output=True,
                              text=True).stdout.split()
        assert pids, "notify child not found"
        os.kill(int(pids[0]), signal.SIGKILL)
        up.wait(timeout=20)
        assert up.returncode == 1
        assert "notify exited" in up.stderr.read()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
