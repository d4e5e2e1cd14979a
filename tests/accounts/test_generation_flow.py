"""Generation with the whole stack: invitations delivered, bounced and accepted as notify and a real SMTP server
report them, a resend with fresh links, and auto-generation after a roster import through the imports service."""

from __future__ import annotations

import re
from typing import Any

import grpc
import pytest

from portal.accounts.v1 import accounts_pb2 as pb
from portal.common.v1 import jobs_pb2
from portal.notify.v1 import notify_pb2
from tests.imports.flows import trial_run, upload
from tests.support.services import make_settings
from tests.support.smtp import SmtpServer
from tests.support.stack import Stack, eventually, running_stack
from tests.support.workbooks import ROSTER_HEADER, xlsx_bytes

ALL = jobs_pb2.Selector(all=True)
ENDED = (jobs_pb2.JOB_STATE_SUCCEEDED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED)
LINK = re.compile(r"set-password\?token=([A-Za-z0-9_\-]+)")


@pytest.fixture
def smtp() -> Any:
    with SmtpServer() as server:
        yield server


async def finished(stack: Stack, job_id: str) -> jobs_pb2.Job:
    async def probe() -> jobs_pb2.Job:
        return await stack.accounts.GetJob(pb.GetJobRequest(id=job_id))

    job = await eventually(probe, lambda j: j.state in ENDED, timeout=60, what=f"job {job_id}")
    assert job.state == jobs_pb2.JOB_STATE_SUCCEEDED, job
    return job


def tokens(smtp: SmtpServer, address: str) -> list[str]:
    return [match for received in smtp.messages if address in received.rcpt_tos
            for match in LINK.findall(received.part("text/plain"))]


async def states(stack: Stack) -> dict[str, str]:
    answer = await stack.accounts.ListInvitations(pb.ListInvitationsRequest(selector=ALL, page_size=100))
    return {i.username: pb.InvitationState.Name(i.state).removeprefix("INVITATION_STATE_").lower()
            for i in answer.invitations}


async def test_invitations_are_delivered_bounced_accepted_and_resent(tmp_path: Any, database_url: str,
                                                                    smtp: SmtpServer) -> None:
    smtp.reject_recipient("gone@example.org")
    settings = make_settings(tmp_path / "data", database_url, smtp_host=smtp.host, smtp_port=smtp.port,
                             public_url="https://portal.example.org", school_name="Hillside Schools")
    async with running_stack(settings, ("notify", "accounts")) as stack:
        await stack.accounts.BatchUpsertRoster(pb.BatchUpsertRosterRequest(
            students=[pb.Student(id=f"S{i}", first_name="Kid", last_name="Smith") for i in (1, 2, 3)],
            contacts=[pb.Contact(id="C1", first_name="Ann", last_name="Smith", email="ann@example.org"),
                      pb.Contact(id="C2", first_name="Bo", last_name="Smith", email="gone@example.org"),
                      pb.Contact(id="C3", first_name="Cy", last_name="Smith", email="cy@example.org")],
            relationships=[pb.RosterRelationship(student_id=f"S{i}", contact_id=f"C{i}", parental_responsibility=True)
                           for i in (1, 2, 3)]))
        plan = await stack.accounts.PlanGeneration(pb.PlanGenerationRequest(selector=ALL))
        job = await stack.accounts.StartGeneration(pb.StartGenerationRequest(plan_id=plan.plan_id,
                                                                             send_invitations=True))
        await finished(stack, job.id)
        await eventually(lambda: states(stack), lambda s: s == {
            "ann@example.org": "delivered", "gone@example.org": "bounced", "cy@example.org": "delivered"},
            timeout=60, what="delivered and bounced")
        bounced = await stack.accounts.ListInvitations(pb.ListInvitationsRequest(
            selector=ALL, state=pb.INVITATION_STATE_BOUNCED))
        assert [i.delivery_error[:3] for i in bounced.invitations] == ["550"]
        await stack.accounts.RedeemSetPasswordToken(pb.RedeemSetPasswordTokenRequest(
            token=tokens(smtp, "cy@example.org")[0], new_password="Correct1Horse"))
        assert (await states(stack))["cy@example.org"] == "accepted"

        preview = await stack.accounts.PreviewResendInvitations(pb.PreviewResendInvitationsRequest(selector=ALL))
        assert preview.count == 2 and "Hillside Schools" in preview.subject
        assert {i.username for i in preview.sample} == {"ann@example.org", "gone@example.org"}
        assert "ann@example.org" in preview.text and "token=PREVIEW" in preview.text
        first = tokens(smtp, "ann@example.org")[0]
        resend = await stack.accounts.StartResendInvitations(pb.StartResendInvitationsRequest(selector=ALL,
                                                                                              request_id="r1"))
        await finished(stack, resend.id)
        await eventually(lambda: _value(len(tokens(smtp, "ann@example.org"))), lambda n: n == 2, timeout=60,
                         what="the fresh invitation")
        fresh = tokens(smtp, "ann@example.org")[1]
        check = stack.accounts.InspectSetPasswordToken
        assert (await check(pb.InspectSetPasswordTokenRequest(token=first))).state == pb.TOKEN_STATE_REVOKED
        assert (await check(pb.InspectSetPasswordTokenRequest(token=fresh))).state == pb.TOKEN_STATE_VALID
        assert len(tokens(smtp, "cy@example.org")) == 1  # accepted: not invited again


async def _value(value: Any) -> Any:
    return value


ROSTER = [
    ROSTER_HEADER,
    ["S1001", "Ada", "Smith", 2030, "7A", "North High", "C1", "Mary", "Smith", "mary@example.org", "Mother", "Y", "Y",
     ""],
    ["S1003", "Cy", "Jones", 2031, "6C", "North High", "C2", "Tom", "Jones", "tom@example.org", "Father", "Y", "N",
     ""],
    ["S1003", "Cy", "Jones", 2031, "6C", "North High", "C3", "Nan", "Jones", "nan@example.org", "Grandmother", "N",
     "N", ""],
]
SIBLING = [
    ROSTER_HEADER,
    ["S1002", "Ben", "Smith", 2032, "5B", "North High", "C1", "Mary", "Smith", "mary@example.org", "Mother", "Y", "Y",
     ""],
]


async def test_auto_generation_after_a_roster_import(tmp_path: Any, database_url: str, smtp: SmtpServer) -> None:
    settings = make_settings(tmp_path / "data", database_url, smtp_host=smtp.host, smtp_port=smtp.port,
                             autogenerate="primary", autogenerate_quiet_seconds=0, alert_channel="CALERTS01")
    async with running_stack(settings) as stack:
        await upload(stack, (await trial_run(stack, "roster.xlsx", xlsx_bytes(ROSTER))).job.id)

        async def generated() -> list[jobs_pb2.Job]:
            answer = await stack.accounts.ListJobs(pb.ListJobsRequest(page_size=20))
            return [j for j in answer.jobs if j.kind == "generate" and j.state in ENDED]

        jobs = await eventually(generated, bool, timeout=60, what="the auto-generation")
        assert jobs[0].state == jobs_pb2.JOB_STATE_SUCCEEDED and jobs[0].actor.startswith("auto-generation")
        assert jobs[0].summary.startswith("1 account created")  # Mary; Tom is not primary, Nan has no PR
        mary = await stack.accounts.GetAccount(pb.GetAccountRequest(username_or_email="mary@example.org"))
        assert list(mary.student_ids) == ["S1001"]
        await eventually(lambda: _value(tokens(smtp, "mary@example.org")), bool, timeout=60, what="her invitation")
        async def alert() -> notify_pb2.Alert | None:
            try:
                return await stack.notify.GetAlert(notify_pb2.GetAlertRequest(idempotency_key=f"job:{jobs[0].id}"))
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND
                return None

        posted = await eventually(alert, bool, timeout=30, what="the alert to PORTAL_ALERT_CHANNEL")
        assert posted is not None and posted.create_time.seconds > 0

        # Her second child arrives with the next import: the same account gains him, keeping the first.
        await upload(stack, (await trial_run(stack, "sibling.xlsx", xlsx_bytes(SIBLING))).job.id)
        await eventually(generated, lambda found: len(found) == 2, timeout=60, what="the second auto-generation")
        mary = await stack.accounts.GetAccount(pb.GetAccountRequest(username_or_email="mary@example.org"))
        assert sorted(mary.student_ids) == ["S1001", "S1002"]
        assert len(tokens(smtp, "mary@example.org")) == 1  # no second invitation for a link
