"""The stand-ins other tests rely on answer as the real servers do (through the real client libraries)."""

from __future__ import annotations

import json

import aiosmtplib
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.support.slack_api import SlackApiStandIn
from tests.support.smtp import SmtpServer


async def test_the_slack_stand_in_answers_the_methods_the_portal_uses() -> None:
    async with SlackApiStandIn(token="xoxb-1", usergroups={"S0ADMINS": ["U1", "U2"]}) as slack:
        client = AsyncWebClient(token="xoxb-1", base_url=slack.base_url)
        assert (await client.auth_test())["user_id"] == "U0PORTALBOT"
        info = await client.users_info(user="U1")
        assert info["user"]["id"] == "U1" and info["user"]["profile"]["email"] == "u1@example.org"
        assert (await client.usergroups_users_list(usergroup="S0ADMINS"))["users"] == ["U1", "U2"]
        assert (await client.chat_postEphemeral(channel="C1", user="U1", text="only you"))["message_ts"]
        view = {"type": "modal", "title": {"type": "plain_text", "text": "Confirm"}, "blocks": []}
        opened = await client.views_open(trigger_id="T123", view=view)
        assert opened["view"]["type"] == "modal" and opened["view"]["id"].startswith("V")
        posted = await client.chat_postMessage(channel="C1", text="hello", blocks=[{"type": "divider"}])
        await client.chat_update(channel="C1", ts=posted["ts"], text="hello again")
        upload = await client.files_upload_v2(channel="C1", filename="a.txt", content=b"abc", title="A")
        assert upload["file"]["title"] == "A"
        with pytest.raises(SlackApiError) as unknown:
            await client.usergroups_users_list(usergroup="S0NONE")
        assert unknown.value.response["error"] == "no_such_subteam"
        slack.fail("chat.postMessage", "channel_not_found")
        with pytest.raises(SlackApiError):
            await client.chat_postMessage(channel="C404", text="x")
        bad = AsyncWebClient(token="xoxb-wrong", base_url=slack.base_url)
        with pytest.raises(SlackApiError) as refused:
            await bad.auth_test()
        assert refused.value.response["error"] == "invalid_auth"
    [message] = slack.messages
    assert (message.text, message.edits, message.blocks) == ("hello again", ["hello"], [{"type": "divider"}])
    [shared] = slack.files
    assert (shared.data, shared.channel_id) == (b"abc", "C1")
    assert [c.method for c in slack.calls_to("views.open")] == ["views.open"]
    assert json.loads(json.dumps(slack.calls_to("views.open")[0].params["view"]))["type"] == "modal"


def test_the_slack_stand_in_serves_synchronous_clients_from_a_thread() -> None:
    with SlackApiStandIn().running_in_thread() as slack:
        client = WebClient(token="xoxb-any", base_url=slack.base_url)
        slack.rate_limit("chat.postMessage", retry_after=3)
        with pytest.raises(SlackApiError) as limited:
            client.chat_postMessage(channel="C1", text="x")
        assert limited.value.response.status_code == 429
        assert limited.value.response.headers["Retry-After"] == "3"
        assert client.chat_postMessage(channel="C1", text="x")["ok"]


async def test_the_smtp_server_can_refuse_and_start_late() -> None:
    server = SmtpServer()
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await aiosmtplib.send(b"Subject: x\r\n\r\nbody\r\n", sender="a@example.org", recipients=["b@example.org"],
                              hostname=server.host, port=server.port, timeout=5)
    with server:
        server.reply_next("451 4.7.1 Later")
        with pytest.raises(aiosmtplib.SMTPDataError) as later:
            await aiosmtplib.send(b"Subject: x\r\n\r\nbody\r\n", sender="a@example.org",
                                  recipients=["b@example.org"], hostname=server.host, port=server.port, timeout=5)
        assert later.value.code == 451
        await aiosmtplib.send(b"Subject: x\r\n\r\nbody\r\n", sender="a@example.org", recipients=["b@example.org"],
                              hostname=server.host, port=server.port, timeout=5)
    assert [m.rcpt_tos for m in server.messages] == [("b@example.org",)]
    assert server.data_commands == 2 and server.connections == 2
