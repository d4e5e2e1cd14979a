"""The bot as Slack meets it: signatures, access, help, retries, privacy, friendly failures (no services needed)."""

from __future__ import annotations

import time

import aiohttp

from tests.bot.conftest import ADMIN, GROUP_MEMBER, OUTSIDER, PUBLIC_CHANNEL, STAFF_CHANNEL, Bot
from tests.bot.wire import eventually, sign, thread


def ephemeral_to(bot: Bot, user: str) -> list[str]:
    from tests.bot.wire import ephemeral_to as shown

    return shown(bot.slack, user)


def file_share_event(file: dict, user: str, channel: str, ts: str, channel_type: str = "group") -> dict:
    return {"type": "message", "subtype": "file_share", "text": "", "user": user, "channel": channel,
            "channel_type": channel_type, "ts": ts, "event_ts": ts, "files": [file]}


async def test_healthz_answers_in_http_mode(bot_alone: Bot) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{bot_alone.settings.bot_port}/healthz") as response:
            assert response.status == 200
            assert (await response.json()) == {"status": "ok", "mode": "http"}


async def test_a_badly_signed_request_is_refused_with_401_and_nothing_runs(bot_alone: Bot) -> None:
    wire = bot_alone.wire
    before = len(bot_alone.slack.calls)
    body = wire.command_body("help", ADMIN, STAFF_CHANNEL, "privategroup")
    stamp = str(int(time.time()))
    answer = await wire.post(body, "application/x-www-form-urlencoded",
                             signature=sign("not-the-secret", stamp, body), timestamp=int(stamp))
    assert answer.status == 401
    tampered = await wire.post(body, "application/x-www-form-urlencoded",
                               signature=sign(wire.secret, stamp, body + b"&x=1"), timestamp=int(stamp))
    assert tampered.status == 401
    # A signed request right after shows the bot was listening, and is the only thing that ran.
    assert (await wire.command("help", ADMIN)).status == 200
    await eventually(lambda: ephemeral_to(bot_alone, ADMIN), "the help answer")
    assert len(ephemeral_to(bot_alone, ADMIN)) == 1
    assert {call.method for call in bot_alone.slack.calls[before:]} <= {"auth.test", "users.info", "chat.postEphemeral"}


async def test_a_replayed_request_older_than_five_minutes_is_refused_with_401(bot_alone: Bot) -> None:
    old = int(time.time()) - 6 * 60
    answer = await bot_alone.wire.command("help", ADMIN, timestamp=old)
    assert answer.status == 401
    assert await bot_alone.wire.command("help", ADMIN) is not None  # then a fresh one, to flush anything queued
    await eventually(lambda: ephemeral_to(bot_alone, ADMIN), "the fresh help answer")
    assert len(ephemeral_to(bot_alone, ADMIN)) == 1


async def test_an_outsider_is_refused_briefly_and_nothing_runs(bot_alone: Bot) -> None:
    answer = await bot_alone.wire.command("account jsmith01", OUTSIDER)
    assert answer.status == 200
    refusals = await eventually(lambda: ephemeral_to(bot_alone, OUTSIDER), "the refusal")
    assert "only portal staff" in refusals[0]
    methods = {call.method for call in bot_alone.slack.calls}
    assert not methods & {"chat.postMessage", "views.open", "files.getUploadURLExternal"}
    # A member of PORTAL_ADMIN_GROUP is staff.
    await bot_alone.wire.command("help", GROUP_MEMBER)
    answers = await eventually(lambda: ephemeral_to(bot_alone, GROUP_MEMBER), "the group member's help")
    assert "Parent portal commands" in answers[0]


async def test_help_lists_every_command_with_examples(bot_alone: Bot) -> None:
    from bot.registry import loaded_registry

    await bot_alone.wire.command("help", ADMIN)
    text = (await eventually(lambda: ephemeral_to(bot_alone, ADMIN), "help"))[0]
    for command in loaded_registry().visible("slack"):
        assert command.usage in text, command.name
        for example in command.examples:
            assert example in text
    assert "/portal upload" not in text  # console only
    assert "Drop a spreadsheet" in text


async def test_a_service_that_is_down_gets_a_friendly_sentence(bot_alone: Bot) -> None:
    await bot_alone.wire.command("account jsmith01", ADMIN)
    answer = (await eventually(lambda: ephemeral_to(bot_alone, ADMIN), "the answer", timeout=60))[0]
    assert "The accounts service is not answering, try again in a minute." in answer
    assert "Traceback" not in answer
    await bot_alone.wire.command("codes", ADMIN)
    answers = await eventually(lambda: ephemeral_to(bot_alone, ADMIN)[1:], "the second answer", timeout=60)
    assert "The imports service is not answering, try again in a minute." in answers[0]


async def test_an_html_page_instead_of_the_file_is_a_configuration_problem(bot_alone: Bot) -> None:
    slack = bot_alone.slack
    ts = slack.add_message(STAFF_CHANNEL, "")
    file = slack.add_user_file("parents.xlsx", b"PK\x03\x04 not used", user=ADMIN, channel=STAFF_CHANNEL, ts=ts,
                               serve_html=True)
    assert (await bot_alone.wire.event(file_share_event(file, ADMIN, STAFF_CHANNEL, ts))).status == 200

    def reported() -> list:
        return [m for m in thread(slack, STAFF_CHANNEL, ts) if "files:read" in m.text]

    message = (await eventually(reported, "the configuration problem"))[0]
    assert "configuration problem" in message.text
    assert any("Trial run running" in edit for edit in message.edits)
    assert slack.downloads == [file["id"]]


async def test_a_file_in_a_public_channel_is_not_processed_without_portal_channels(bot_alone: Bot) -> None:
    slack = bot_alone.slack
    ts = slack.add_message(PUBLIC_CHANNEL, "")
    file = slack.add_user_file("parents.csv", b"LOGONID,EMAIL\n", user=ADMIN, channel=PUBLIC_CHANNEL, ts=ts,
                               public=True)
    await bot_alone.wire.event(file_share_event(file, ADMIN, PUBLIC_CHANNEL, ts, channel_type="channel"))
    await bot_alone.wire.event({"type": "file_shared", "file_id": file["id"], "user_id": ADMIN,
                                "channel_id": PUBLIC_CHANNEL, "event_ts": ts, "file": {"id": file["id"]}})
    answers = await eventually(lambda: ephemeral_to(bot_alone, ADMIN), "the privacy answer")
    assert "personal data" in answers[0]
    await bot_alone.wire.command("help", ADMIN)  # anything queued behind it has run once this is answered
    await eventually(lambda: len(ephemeral_to(bot_alone, ADMIN)) >= 2, "help")
    assert len([t for t in ephemeral_to(bot_alone, ADMIN) if "personal data" in t]) == 1
    assert slack.downloads == []
    assert not slack.calls_to("chat.postMessage")


async def test_every_subscribed_event_type_is_answered_200(bot_alone: Bot) -> None:
    ts = bot_alone.slack.add_message(STAFF_CHANNEL, "hello")
    plain = {"type": "message", "text": "hello", "user": ADMIN, "channel": STAFF_CHANNEL, "ts": ts,
             "channel_type": "group"}
    assert (await bot_alone.wire.event(plain)).status == 200
    assert (await bot_alone.wire.event({**plain, "channel_type": "im", "channel": "DADMIN"})).status == 200
    assert (await bot_alone.wire.event({**plain, "channel_type": "channel", "channel": PUBLIC_CHANNEL})).status == 200
    shared = {"type": "file_shared", "file_id": "FNOTTHERE", "user_id": ADMIN, "channel_id": STAFF_CHANNEL,
              "event_ts": ts}
    assert (await bot_alone.wire.event(shared)).status == 200
    assert (await bot_alone.wire.post(b'{"type":"url_verification","challenge":"abc","token":"x"}',
                                      "application/json")).json() == {"challenge": "abc"}


async def test_the_create_form_opens_and_a_service_that_is_down_shows_on_the_form(bot_alone: Bot) -> None:
    assert (await bot_alone.wire.command("create", ADMIN)).status == 200
    opened = await eventually(lambda: bot_alone.slack.calls_to("views.open", ok_only=True), "views.open")
    view = {**opened[0].params["view"], "id": "V0DOWN0001"}
    assert view["callback_id"] == "account_create"
    answer = await bot_alone.wire.submit_view(view, {"username": "jsmith01", "first_name": "Jane",
                                                     "last_name": "Smith", "email": "jane@example.org",
                                                     "type": "guardian", "invite": ["invite"]}, ADMIN)
    assert answer.status == 200
    assert answer.json() == {"response_action": "errors", "errors": {
        "username": "The accounts service is not answering, try again in a minute."}}
    outsider = await bot_alone.wire.submit_view(view, {"username": "jsmith01"}, OUTSIDER)
    assert "only portal staff" in outsider.json()["errors"]["username"]


async def test_a_file_dropped_while_imports_is_down_is_handled_once_with_a_friendly_update(bot_alone: Bot) -> None:
    slack = bot_alone.slack
    ts = slack.add_message(STAFF_CHANNEL, "")
    file = slack.add_user_file("parents.csv", b"LOGONID,FIRST_NAME,LAST_NAME,EMAIL,STUDENT_IDS\n", user=ADMIN,
                               channel=STAFF_CHANNEL, ts=ts)
    message = file_share_event(file, ADMIN, STAFF_CHANNEL, ts)
    shared = {"type": "file_shared", "file_id": file["id"], "user_id": ADMIN, "channel_id": STAFF_CHANNEL,
              "event_ts": ts, "file": {"id": file["id"]}}
    for event, event_id, retry in ((message, "Ev0DOWN0001", None), (shared, "Ev0DOWN0002", None),
                                   (message, "Ev0DOWN0001", 1)):
        assert (await bot_alone.wire.event(event, event_id=event_id, retry=retry)).status == 200

    def told() -> list:
        return [m for m in thread(slack, STAFF_CHANNEL, ts) if "not answering" in m.text]

    progress = (await eventually(told, "the friendly update", timeout=60))[0]
    assert progress.thread_ts == ts and progress.edits[0].startswith("Trial run running")
    assert "The imports service is not answering, try again in a minute." in progress.text
    await bot_alone.wire.command("help", ADMIN)  # once answered, anything queued before it has run
    await eventually(lambda: ephemeral_to(bot_alone, ADMIN), "help")
    assert len([m for m in thread(slack, STAFF_CHANNEL, ts) if m.ts != ts]) == 1
    assert slack.downloads == [file["id"]]
