"""Email delivery end to end: the real notify server, over gRPC, to a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import grpc
import pytest

from plumbing import migrations
from plumbing.db import Database, utcnow
from portal.notify.v1 import notify_pb2
from services.notify.store import NewMessage, NotifyStore
from tests.notify.helpers import (
    FAST,
    LINK_BASE,
    all_in_state,
    enqueue,
    eventually,
    invitation,
    message_state,
    notify_stub,
    struct,
)
from tests.support.certs import make_certs
from tests.support.services import make_settings, running_service
from tests.support.smtp import SmtpServer, message_ids, server_tls_context

SENT = notify_pb2.DELIVERY_STATE_SENT
FAILED = notify_pb2.DELIVERY_STATE_FAILED
QUEUED = notify_pb2.DELIVERY_STATE_QUEUED


async def test_an_invitation_arrives_with_both_parts_the_headers_and_the_link_but_no_password(mail_settings, smtp):
    settings = mail_settings.model_copy(update={"school_name": "Lincoln High", "mail_from": "Lincoln High "
                                                "<office@lincoln.example.org>"})
    async with running_service("notify", settings), notify_stub(settings) as stub:
        [queued] = await enqueue(stub, invitation("inv-000001", "Parent.One@Example.ORG", job_id="job-7",
                                                  first_name="Ada", password="Secret-Passw0rd"))
        assert queued.state in (QUEUED, notify_pb2.DELIVERY_STATE_SENDING, SENT)
        assert queued.message_id.startswith("<") and queued.message_id.endswith("@lincoln.example.org>")
        sent = await eventually(lambda: _sent(stub, "inv-000001"), what="the invitation marked sent")

    [received] = smtp.messages
    message = received.message
    assert received.mail_from == "office@lincoln.example.org"
    assert received.rcpt_tos == ("Parent.One@example.org",)
    assert message["From"] == "Lincoln High <office@lincoln.example.org>"
    assert message["To"] == "Parent.One@example.org"
    assert message["Subject"] == "Your Lincoln High parent portal account"
    assert abs(parsedate_to_datetime(message["Date"]) - datetime.now(UTC)) < timedelta(minutes=5)
    assert message["Message-ID"] == queued.message_id == sent.message_id
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    text, html = received.part("text/plain"), received.part("text/html")
    link = LINK_BASE + "inv-000001"
    assert link in text and f'href="{link}"' in html
    assert "Hello Ada" in text and "Hello Ada" in html
    assert "Your username: user000001" in text
    assert "expires on Friday 4 January 2030 at 17:00 UTC" in text
    # The invitation never carries a password, even when a caller puts one in its data.
    assert b"Secret-Passw0rd" not in received.content
    assert "Secret" not in text and "Secret" not in html
    assert sent.attempts == 1 and sent.last_error == "" and sent.sent_time.seconds > 0
    assert sent.job_id == "job-7"


async def _sent(stub, key: str) -> notify_pb2.Message | None:
    message = await message_state(stub, key)
    return message if message.state == SENT else None


async def _state(stub, key: str, state: int) -> notify_pb2.Message | None:
    message = await message_state(stub, key)
    return message if message.state == state else None


async def test_messages_queued_while_the_smtp_server_is_down_are_each_delivered_once_when_it_starts(
        tmp_path, database_url):
    smtp = SmtpServer()  # its port is known, nothing listens yet
    settings = make_settings(tmp_path / "data", database_url, **smtp.settings_overrides(), **FAST)
    keys = [f"down-{n:04d}" for n in range(25)]
    try:
        async with running_service("notify", settings), notify_stub(settings) as stub:
            await enqueue(stub, *[invitation(key, f"parent{n}@example.org") for n, key in enumerate(keys)])
            # notify tries, finds the server down, and keeps retrying with backoff: wait for a few rounds of that.
            waiting = await eventually(lambda: _retried(stub, keys[0], 3), what="three failed attempts")
            assert waiting.state == QUEUED and "connection failed" in waiting.last_error
            assert waiting.next_attempt_time.seconds > 0
            smtp.start()
            await eventually(lambda: all_in_state(stub, keys, SENT), timeout=30, what="every message sent")
            messages = smtp.messages
            assert sorted(m.rcpt_tos[0] for m in messages) == sorted(f"parent{n}@example.org" for n in range(25))
            assert len(set(message_ids(messages))) == 25
            final = await message_state(stub, keys[0])
            assert final.attempts >= 4 and final.last_error == ""
    finally:
        smtp.stop()


async def _retried(stub, key: str, attempts: int) -> notify_pb2.Message | None:
    message = await message_state(stub, key)
    return message if message.attempts >= attempts and message.state == QUEUED else None


async def test_a_451_reply_is_retried_and_the_message_delivered_once(mail_settings, smtp):
    smtp.reply_next("451 4.7.1 Greylisted, please try again later")
    async with running_service("notify", mail_settings), notify_stub(mail_settings) as stub:
        await enqueue(stub, invitation("grey-0001", "grey@example.org"))
        sent = await eventually(lambda: _sent(stub, "grey-0001"), what="sent after the 451")
    assert sent.attempts == 2
    assert smtp.data_commands == 2
    assert [m.rcpt_tos for m in smtp.messages] == [("grey@example.org",)]


async def test_a_550_reply_fails_the_message_with_the_reply_and_it_is_not_retried(mail_settings, smtp):
    smtp.reply_next("550 5.7.1 Message refused by policy")
    smtp.reject_recipient("nobody@example.org", "550 5.1.1 <nobody@example.org>: Recipient address rejected")
    async with running_service("notify", mail_settings), notify_stub(mail_settings) as stub:
        await enqueue(stub, invitation("refused-01", "refused@example.org"),
                      invitation("unknown-01", "nobody@example.org"))
        refused = await eventually(lambda: _state(stub, "refused-01", FAILED), what="refused marked failed")
        unknown = await eventually(lambda: _state(stub, "unknown-01", FAILED), what="unknown marked failed")
        # Later work goes through, and the failed ones were not tried again meanwhile.
        await enqueue(stub, invitation("after-0001", "after@example.org"))
        await eventually(lambda: _sent(stub, "after-0001"), what="the next message")
        assert (await message_state(stub, "refused-01")).attempts == 1
    assert refused.last_error == "550 5.7.1 Message refused by policy"
    assert refused.attempts == 1 and not refused.HasField("next_attempt_time")
    assert unknown.last_error.startswith("550 5.1.1") and "Recipient address rejected" in unknown.last_error
    assert smtp.data_commands == 2
    assert [m.rcpt_tos for m in smtp.messages] == [("after@example.org",)]


async def test_a_bad_address_or_missing_link_fails_at_once_without_holding_back_the_batch(mail_settings, smtp):
    no_link = notify_pb2.EmailRequest(idempotency_key="nolink-001", template=notify_pb2.TEMPLATE_PASSWORD_RESET,
                                      to="reset@example.org", data=struct({"username": "resetme1"}))
    js_link = notify_pb2.EmailRequest(idempotency_key="jslink-001", template=notify_pb2.TEMPLATE_PASSWORD_RESET,
                                      to="reset@example.org", data=struct({"link": "javascript:alert(1)"}))
    async with running_service("notify", mail_settings), notify_stub(mail_settings) as stub:
        replies = await enqueue(stub, invitation("badaddr-01", "not an address"), no_link, js_link,
                                invitation("good-00001", "good@example.org"))
        assert [r.state for r in replies[:3]] == [FAILED, FAILED, FAILED]
        assert replies[0].last_error.startswith("bad address")
        assert replies[1].last_error == "missing template data: link"
        assert "not an http(s) link" in replies[2].last_error
        await eventually(lambda: _sent(stub, "good-00001"), what="the good message")
    assert [m.rcpt_tos for m in smtp.messages] == [("good@example.org",)]


async def test_the_same_idempotency_key_twice_or_at_once_is_one_email(mail_settings, smtp):
    async with running_service("notify", mail_settings), notify_stub(mail_settings) as stub:
        first = await enqueue(stub, invitation("dup-000001", "dup@example.org"),
                              invitation("dup-000001", "other@example.org"))
        assert first[0].to == first[1].to == "dup@example.org"
        # Five callers at the same moment with the same key (a relay retried by two replicas, say).
        await asyncio.gather(*[enqueue(stub, invitation("dup-000002", "dup2@example.org")) for _ in range(5)])
        await eventually(lambda: all_in_state(stub, ["dup-000001", "dup-000002"], SENT), what="both sent")
        again = await enqueue(stub, invitation("dup-000001", "dup@example.org"))
        assert again[0].state == SENT and again[0].attempts == 1
        listed = await stub.ListMessages(notify_pb2.ListMessagesRequest(idempotency_key_prefix="dup-"), timeout=10)
        assert [m.idempotency_key for m in listed.messages] == ["dup-000001", "dup-000002"]
        # A barrier: once a later message is sent, a duplicate (had one been queued) would have been too.
        await enqueue(stub, invitation("dup-barrier", "barrier@example.org"))
        await eventually(lambda: _sent(stub, "dup-barrier"), what="the barrier message")
    assert Counter(m.rcpt_tos[0] for m in smtp.messages) == {"dup@example.org": 1, "dup2@example.org": 1,
                                                             "barrier@example.org": 1}


async def test_many_messages_share_a_few_reused_connections(mail_settings, smtp):
    async with running_service("notify", mail_settings), notify_stub(mail_settings) as stub:
        keys = [f"pool-{n:04d}" for n in range(120)]
        await enqueue(stub, *[invitation(key, f"pool{n}@example.org") for n, key in enumerate(keys)])
        await eventually(lambda: all_in_state(stub, keys, SENT), timeout=60, what="every message sent")
    assert len(smtp.messages) == 120
    # 120 messages over at most PORTAL_SMTP_POOL_SIZE connections, each retired after 100 messages.
    assert smtp.connections <= mail_settings.smtp_pool_size + 2


async def test_starttls_with_login_and_implicit_tls(tmp_path, database_url):
    certs = make_certs(tmp_path / "certs")
    context = server_tls_context(certs.cert, certs.key)
    for index, smtp in enumerate([SmtpServer(starttls=context, login=("mailer", "s3cret-Pass")),
                                  SmtpServer(implicit_tls=context)]):
        with smtp:
            settings = make_settings(tmp_path / f"data{index}", database_url,
                                     **smtp.settings_overrides(ca_file=certs.ca), **FAST)
            async with running_service("notify", settings), notify_stub(settings) as stub:
                await enqueue(stub, invitation(f"tls-{index:05d}", "secure@example.org"))
                await eventually(lambda stub=stub, index=index: _sent(stub, f"tls-{index:05d}"), what="sent over TLS")
            assert len(smtp.messages) == 1
            if smtp.login:
                assert set(smtp.logins) == {"mailer"}


async def test_a_refused_login_keeps_messages_queued_with_the_reply(tmp_path, database_url):
    certs = make_certs(tmp_path / "certs")
    with SmtpServer(starttls=server_tls_context(certs.cert, certs.key), login=("mailer", "right")) as smtp:
        overrides = {**smtp.settings_overrides(ca_file=certs.ca), "smtp_password": "wrong"}
        settings = make_settings(tmp_path / "data", database_url, **overrides, **FAST)
        async with running_service("notify", settings), notify_stub(settings) as stub:
            await enqueue(stub, invitation("login-0001", "someone@example.org"))
            waiting = await eventually(lambda: _retried(stub, "login-0001", 2), what="retries after a refused login")
    assert waiting.last_error.startswith("535")
    assert smtp.messages == []


async def test_each_destination_domain_is_rate_limited_with_counters_in_the_database(tmp_path, database_url, smtp):
    settings = make_settings(tmp_path / "data", database_url, **smtp.settings_overrides(), **FAST,
                             notify_domain_rate_limit=4, notify_domain_rate_window_seconds=1)
    busy = [f"busy-{n:04d}" for n in range(10)]
    calm = [f"calm-{n:04d}" for n in range(3)]
    async with running_service("notify", settings), notify_stub(settings) as stub:
        await enqueue(stub, *[invitation(k, f"p{n}@busy.example.org") for n, k in enumerate(busy)],
                      *[invitation(k, f"p{n}@calm.example.org") for n, k in enumerate(calm)])
        await eventually(lambda: all_in_state(stub, busy + calm, SENT), timeout=30, what="everything sent")
        attempts = [(await message_state(stub, key)).attempts for key in busy]
    db = Database(database_url, "notify")
    try:
        counts = NotifyStore(db).domain_counts("busy.example.org")
    finally:
        db.dispose()
    assert sum(counts.values()) == 10
    assert max(counts.values()) <= 4 and len(counts) >= 3
    # Waiting for a window is not an attempt.
    assert attempts == [1] * 10
    arrivals = {m.rcpt_tos[0].split("@")[1]: m.at for m in smtp.messages}
    assert arrivals["calm.example.org"] < arrivals["busy.example.org"]


async def test_a_message_whose_worker_died_is_sent_once_its_lease_expires(tmp_path, database_url, smtp):
    settings = make_settings(tmp_path / "data", database_url, **smtp.settings_overrides(), **FAST)
    db = Database(database_url, "notify")
    try:
        await db.run(migrations.upgrade, db, "notify")
        store = NotifyStore(db)
        now = utcnow()
        new = NewMessage(key="orphan-001", template="invitation", recipient="orphan@example.org",
                         domain="example.org", data={"username": "orphan01", "link": LINK_BASE + "x"}, job_id="",
                         school="", message_id="<orphan-001@localhost>")
        await db.run(store.add_messages, [new], now)
        # A worker takes it and dies before sending: nobody else may touch it until its lease expires.
        [claimed] = await db.run(store.claim_messages, "dead-worker", 10, utcnow(), 2.0)
        async with running_service("notify", settings), notify_stub(settings) as stub:
            sent = await eventually(lambda: _sent(stub, "orphan-001"), what="sent after the lease")
    finally:
        db.dispose()
    assert len(smtp.messages) == 1
    arrived = smtp.messages[0].message
    assert arrived["Message-ID"] == "<orphan-001@localhost>"
    assert sent.attempts == 2
    assert sent.sent_time.ToDatetime(tzinfo=UTC) >= claimed.lease_until


async def test_messages_are_listed_by_job_prefix_recipient_and_state_in_pages(tmp_path, database_url):
    # No SMTP server configured: messages stay queued (bad ones fail), so states are exactly known.
    settings = make_settings(tmp_path / "data", database_url)
    async with running_service("notify", settings), notify_stub(settings) as stub:
        await enqueue(stub, *[invitation(f"acct:jobA:{n:04d}", f"a{n}@example.org", job_id="jobA") for n in range(7)],
                      *[invitation(f"acct:jobB:{n:04d}", "same@example.org", job_id="jobB") for n in range(3)],
                      invitation("acct:jobB:bad", "broken address", job_id="jobB"))
        seen, token, pages = [], "", 0
        while True:
            page = await stub.ListMessages(notify_pb2.ListMessagesRequest(job_id="jobA", page_size=3,
                                                                          page_token=token), timeout=10)
            seen += [m.idempotency_key for m in page.messages]
            pages += 1
            token = page.next_page_token
            if not token:
                break
        assert seen == [f"acct:jobA:{n:04d}" for n in range(7)] and pages == 3
        by_prefix = await stub.ListMessages(notify_pb2.ListMessagesRequest(idempotency_key_prefix="acct:jobB:"))
        assert len(by_prefix.messages) == 4
        by_to = await stub.ListMessages(notify_pb2.ListMessagesRequest(to="SAME@example.org"), timeout=10)
        assert [m.idempotency_key for m in by_to.messages] == [f"acct:jobB:{n:04d}" for n in range(3)]
        failed = await stub.ListMessages(notify_pb2.ListMessagesRequest(job_id="jobB", state=FAILED), timeout=10)
        assert [m.idempotency_key for m in failed.messages] == ["acct:jobB:bad"]
        with pytest.raises(grpc.RpcError) as wrong_token:
            await stub.ListMessages(notify_pb2.ListMessagesRequest(job_id="jobB", page_token=token or "bm9wZQ"))
        assert wrong_token.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as missing:
            await message_state(stub, "acct:nope")
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as no_key:
            await enqueue(stub, invitation("", "x@example.org"))
        assert no_key.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_template_is_previewed_without_sending(mail_settings, smtp):
    async with running_service("notify", mail_settings), notify_stub(mail_settings) as stub:
        preview = await stub.PreviewTemplate(notify_pb2.PreviewTemplateRequest(
            template=notify_pb2.TEMPLATE_INVITATION, data=struct({"first_name": "<Jo>"})), timeout=10)
        assert preview.subject == "Your Parent Portal account"
        assert "Hello <Jo>" in preview.text and "Hello &lt;Jo&gt;" in preview.html
        assert "/set-password?token=" in preview.text
        notice = await stub.PreviewTemplate(notify_pb2.PreviewTemplateRequest(
            template=notify_pb2.TEMPLATE_NOTICE, data=struct({"subject": "Snow day", "body": "School is closed."})))
        assert notice.subject == "Snow day" and "<p>School is closed.</p>" in notice.html
        with pytest.raises(grpc.RpcError) as unspecified:
            await stub.PreviewTemplate(notify_pb2.PreviewTemplateRequest(), timeout=10)
        assert unspecified.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert smtp.messages == [] and smtp.connections == 0


def test_templates_are_packaged_beside_the_code() -> None:
    folder = Path(__file__).resolve().parents[2] / "services" / "notify" / "templates"
    for name in ("invitation", "password_reset", "login_details", "two_factor_enabled", "notice"):
        assert (folder / f"{name}.txt.j2").is_file() and (folder / f"{name}.html.j2").is_file()


async def test_a_message_still_undelivered_at_the_maximum_age_is_failed_with_the_last_error(tmp_path, database_url):
    smtp = SmtpServer()  # never started
    settings = make_settings(tmp_path / "data", database_url, **smtp.settings_overrides(),
                             **{**FAST, "notify_retry_max_age_seconds": 1.0})
    async with running_service("notify", settings), notify_stub(settings) as stub:
        await enqueue(stub, invitation("old-000001", "old@example.org"))
        failed = await eventually(lambda: _state(stub, "old-000001", FAILED), what="given up")
    assert failed.last_error.startswith(f"gave up after {failed.attempts} attempts over ")
    assert "connection failed" in failed.last_error and failed.attempts >= 2


async def test_stopping_gives_back_claimed_messages_so_a_restart_sends_them_without_waiting(tmp_path, database_url):
    # One slow connection: when notify stops, one message is in flight and the rest are claimed but unsent.
    with SmtpServer(delay=0.3) as smtp:
        settings = make_settings(tmp_path / "data", database_url, **smtp.settings_overrides(), **FAST,
                                 smtp_pool_size=1, notify_lease_seconds=600)
        keys = [f"stop-{n:05d}" for n in range(12)]
        async with running_service("notify", settings), notify_stub(settings) as stub:
            await enqueue(stub, *[invitation(key, f"{key}@example.org") for key in keys])
            await eventually(lambda: smtp.messages, what="a first message")
        delivered_before_stop = len(smtp.messages)
        assert delivered_before_stop < len(keys)
        # Had the claimed messages kept their 10-minute leases, this would wait ten minutes.
        async with running_service("notify", settings), notify_stub(settings) as stub:
            await eventually(lambda: all_in_state(stub, keys, SENT), timeout=30, what="the rest sent")
            attempts = {key: (await message_state(stub, key)).attempts for key in keys}
    assert Counter(m.rcpt_tos[0] for m in smtp.messages) == {f"{key}@example.org": 1 for key in keys}
    assert set(attempts.values()) == {1}
