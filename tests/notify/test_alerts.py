"""Task alerts end to end: the real notify server posting to a local stand-in for Slack's Web API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from plumbing.config import Settings
from portal.common.v1 import jobs_pb2
from portal.notify.v1 import notify_pb2
from tests.notify.helpers import FAST, eventually, notify_stub
from tests.support.services import make_settings, running_service
from tests.support.slack_api import SlackApiStandIn

TOKEN = "xoxb-test-token"
SENT = notify_pb2.DELIVERY_STATE_SENT
FAILED = notify_pb2.DELIVERY_STATE_FAILED


@pytest.fixture
async def slack() -> AsyncIterator[SlackApiStandIn]:
    async with SlackApiStandIn(token=TOKEN) as api:
        yield api


@pytest.fixture
def slack_settings(tmp_path: Path, database_url: str, slack: SlackApiStandIn) -> Settings:
    return make_settings(tmp_path / "data", database_url, SLACK_BOT_TOKEN=TOKEN, SLACK_API_URL=slack.base_url,
                         **FAST)


async def _alert_in(stub, key: str, state: int) -> notify_pb2.Alert | None:
    alert = await stub.GetAlert(notify_pb2.GetAlertRequest(idempotency_key=key), timeout=10)
    return alert if alert.state == state else None


async def test_an_alert_reaches_the_user_by_direct_message_after_a_429_with_retry_after(slack_settings, slack):
    slack.rate_limit("chat.postMessage", retry_after=1)
    async with running_service("notify", slack_settings), notify_stub(slack_settings) as stub:
        accepted = await stub.SendAlert(notify_pb2.SendAlertRequest(
            idempotency_key="job:imp_0001", user_id="U0STAFF1", text="Upload of parents.xlsx finished: 12 created"),
            timeout=10)
        assert accepted.state in (notify_pb2.DELIVERY_STATE_QUEUED, notify_pb2.DELIVERY_STATE_SENDING)
        alert = await eventually(lambda: _alert_in(stub, "job:imp_0001", SENT), what="the alert delivered")
    opened = slack.calls_to("conversations.open")
    assert [c.params["users"] for c in opened] == ["U0STAFF1"]
    assert all(c.headers["Authorization"] == f"Bearer {TOKEN}" for c in slack.calls)
    limited, posted = slack.calls_to("chat.postMessage")
    assert limited.status == 429 and posted.status == 200
    # Retry-After was honoured.
    assert posted.at - limited.at >= 1.0
    [message] = slack.messages
    assert (message.channel, message.text) == ("DU0STAFF1", "Upload of parents.xlsx finished: 12 created")
    assert (alert.channel, alert.ts) == (message.channel, message.ts)
    assert alert.attempts == 2 and alert.sent_time.seconds > 0
    # The DM was opened once: the retry carried on from the saved step.
    assert len(opened) == 1


async def test_the_same_key_twice_posts_once_and_returns_the_stored_alert(slack_settings, slack):
    request = notify_pb2.SendAlertRequest(idempotency_key="job:imp_0002", channel="C0STAFF",
                                          text="Trial run finished")
    async with running_service("notify", slack_settings), notify_stub(slack_settings) as stub:
        await stub.SendAlert(request, timeout=10)
        first = await eventually(lambda: _alert_in(stub, "job:imp_0002", SENT), what="the alert delivered")
        again = await stub.SendAlert(request, timeout=10)
        assert again == first
        # A barrier: another alert goes through after it; the repeated key posted nothing meanwhile.
        await stub.SendAlert(notify_pb2.SendAlertRequest(idempotency_key="job:barrier", channel="C0STAFF",
                                                         text="barrier"), timeout=10)
        await eventually(lambda: _alert_in(stub, "job:barrier", SENT), what="the barrier alert")
    assert [m.text for m in slack.messages] == ["Trial run finished", "barrier"]


async def test_an_alert_updates_the_progress_message_and_uploads_its_file_into_the_thread(slack_settings, slack):
    thread = slack.add_message("C0IMPORT", "parents.xlsx dropped")
    progress = slack.add_message("C0IMPORT", "Trial run: 40% done", thread_ts=thread)
    workbook = b"PK\x03\x04" + bytes(range(256)) * 64
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Trial run finished*"}}]
    async with running_service("notify", slack_settings), notify_stub(slack_settings) as stub:
        await stub.SendAlert(notify_pb2.SendAlertRequest(
            idempotency_key="job:imp_0003", channel="C0IMPORT",
            anchor=jobs_pb2.SlackAnchor(channel="C0IMPORT", thread_ts=thread, message_ts=progress, user_id="U1"),
            text="Trial run finished: 3 errors", blocks_json=json.dumps(blocks),
            files=[notify_pb2.AlertFile(filename="parents-annotated.xlsx", data=workbook, title="Annotated")],
        ), timeout=10)
        alert = await eventually(lambda: _alert_in(stub, "job:imp_0003", SENT), what="the alert delivered")
    updated = next(m for m in slack.messages if m.ts == progress)
    assert updated.text == "Trial run finished: 3 errors" and updated.edits == ["Trial run: 40% done"]
    assert updated.blocks == blocks
    assert slack.calls_to("chat.postMessage") == []
    assert (alert.channel, alert.ts) == ("C0IMPORT", progress)
    [shared] = slack.files
    assert shared.data == workbook and shared.filename == "parents-annotated.xlsx" and shared.title == "Annotated"
    assert (shared.channel_id, shared.thread_ts) == ("C0IMPORT", thread)
    # The upload URL is Slack's own and takes no token.
    [upload] = slack.calls_to("upload")
    assert "Authorization" not in upload.headers


async def test_a_rate_limited_file_upload_is_retried_without_posting_the_message_again(slack_settings, slack):
    slack.rate_limit("files.completeUploadExternal", retry_after=1)
    async with running_service("notify", slack_settings), notify_stub(slack_settings) as stub:
        await stub.SendAlert(notify_pb2.SendAlertRequest(
            idempotency_key="job:gen_0004", channel="C0REPORTS", text="Usage report ready",
            files=[notify_pb2.AlertFile(filename="usage.xlsx", data=b"report-bytes")]), timeout=10)
        alert = await eventually(lambda: _alert_in(stub, "job:gen_0004", SENT), what="the alert delivered")
    assert len(slack.calls_to("chat.postMessage")) == 1
    [shared] = slack.files
    assert shared.data == b"report-bytes" and shared.title == "usage.xlsx" and shared.channel_id == "C0REPORTS"
    assert alert.attempts == 2


async def test_a_message_that_cannot_be_updated_is_posted_in_the_thread_instead(slack_settings, slack):
    thread = slack.add_message("C0IMPORT", "roster.csv dropped")
    async with running_service("notify", slack_settings), notify_stub(slack_settings) as stub:
        await stub.SendAlert(notify_pb2.SendAlertRequest(
            idempotency_key="job:imp_0005", anchor=jobs_pb2.SlackAnchor(
                channel="C0IMPORT", thread_ts=thread, message_ts="1600000000.000001"),
            text="Roster import finished"), timeout=10)
        await eventually(lambda: _alert_in(stub, "job:imp_0005", SENT), what="the alert delivered")
    [post] = slack.calls_to("chat.postMessage")
    assert post.params["channel"] == "C0IMPORT" and post.params["thread_ts"] == thread


async def test_a_permanent_slack_error_fails_the_alert_and_is_not_retried(slack_settings, slack):
    slack.fail("chat.postMessage", "channel_not_found")
    async with running_service("notify", slack_settings), notify_stub(slack_settings) as stub:
        await stub.SendAlert(notify_pb2.SendAlertRequest(idempotency_key="job:lost", channel="C0GONE", text="hi"))
        failed = await eventually(lambda: _alert_in(stub, "job:lost", FAILED), what="the alert failed")
        # No destination at all (no PORTAL_ALERT_CHANNEL): recorded as failed, never blocking the caller.
        nowhere = await stub.SendAlert(notify_pb2.SendAlertRequest(idempotency_key="job:nowhere", text="hi"))
        with pytest.raises(grpc.RpcError) as bad_blocks:
            await stub.SendAlert(notify_pb2.SendAlertRequest(idempotency_key="job:x", channel="C1", text="x",
                                                             blocks_json="{not json"))
    assert failed.last_error == "Slack error: channel_not_found" and failed.attempts == 1
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert nowhere.state == FAILED and "PORTAL_ALERT_CHANNEL" in nowhere.last_error
    assert bad_blocks.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_without_slack_alerts_go_to_the_console_log_and_are_marked_sent(tmp_path, database_url):
    settings = make_settings(tmp_path / "data", database_url, **FAST)
    assert settings.slack_bot_token is None
    async with running_service("notify", settings), notify_stub(settings) as stub:
        await stub.SendAlert(notify_pb2.SendAlertRequest(
            idempotency_key="job:console1", user_id="console", text="Upload finished: 3 created",
            files=[notify_pb2.AlertFile(filename="log.xlsx", data=b"xlsx-bytes", title="Upload log")]), timeout=10)
        alert = await eventually(lambda: _alert_in(stub, "job:console1", SENT), what="the alert logged")
    log_path = settings.data_dir / "outbox" / "alerts.log"
    [line] = log_path.read_text().splitlines()
    entry = json.loads(line)
    assert entry["key"] == "job:console1" and entry["text"] == "Upload finished: 3 created"
    assert entry["user_id"] == "console"
    [saved] = entry["files"]
    assert Path(saved).read_bytes() == b"xlsx-bytes" and Path(saved).is_relative_to(settings.data_dir / "outbox")
    assert alert.channel == "@console"


async def test_an_alert_with_text_only_replaces_the_progress_message_whole(slack_settings, slack):
    progress = slack.add_message("C0IMPORT", "Upload: 10% done")
    async with running_service("notify", slack_settings), notify_stub(slack_settings) as stub:
        await stub.SendAlert(notify_pb2.SendAlertRequest(
            idempotency_key="job:imp_0006", anchor=jobs_pb2.SlackAnchor(channel="C0IMPORT", message_ts=progress),
            text="Upload finished"), timeout=10)
        await eventually(lambda: _alert_in(stub, "job:imp_0006", SENT), what="the alert delivered")
    [update] = slack.calls_to("chat.update")
    assert update.params["blocks"] == [] and update.params["text"] == "Upload finished"
