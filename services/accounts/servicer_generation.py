"""The gRPC face of generation, the roster dashboard and invitations (part of AccountsServicer): protobuf in,
domain calls, protobuf out."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from plumbing import status_codes as sc
from plumbing.errors import FieldViolation, InvalidArgument
from plumbing.filechunks import file_chunks
from plumbing.jobs import job_to_proto
from portal.accounts.v1 import accounts_pb2 as pb
from portal.common.v1 import jobs_pb2
from services.accounts import generation_rules as gr
from services.accounts.domain import StudentSelector
from services.accounts.generation import Generation
from services.accounts.invitations import Invitation, Invitations

Context = grpc.aio.ServicerContext
WHO = {pb.GUARDIAN_SCOPE_UNSPECIFIED: gr.WHO_ALL, pb.GUARDIAN_SCOPE_ALL: gr.WHO_ALL,
       pb.GUARDIAN_SCOPE_PRIMARY: gr.WHO_PRIMARY}
ACTIONS = {gr.CREATE: pb.GENERATION_ACTION_CREATE, gr.LINK: pb.GENERATION_ACTION_LINK,
           gr.COMPLETE: pb.GENERATION_ACTION_COMPLETE, gr.SKIP: pb.GENERATION_ACTION_SKIP}
STATES = {gr.PENDING: pb.INVITATION_STATE_PENDING, gr.DELIVERED: pb.INVITATION_STATE_DELIVERED,
          gr.BOUNCED: pb.INVITATION_STATE_BOUNCED, gr.FAILED: pb.INVITATION_STATE_FAILED,
          gr.EXPIRED: pb.INVITATION_STATE_EXPIRED, gr.ACCEPTED: pb.INVITATION_STATE_ACCEPTED,
          gr.NOT_SENT: pb.INVITATION_STATE_NOT_SENT}
STATE_NAMES = {number: name for name, number in STATES.items()}

# What the mixin needs: generation and invitations.
GenerationParts = tuple[Generation, Invitations]


def _selector(message: pb.PlanGenerationRequest | pb.GetRosterDashboardRequest | pb.DownloadRosterListRequest
              ) -> StudentSelector:
    from services.accounts.servicer import student_selector

    return student_selector(message.selector if message.HasField("selector") else None)


def _optional_selector(message: pb.ListInvitationsRequest | pb.PreviewResendInvitationsRequest
                       | pb.StartResendInvitationsRequest) -> StudentSelector | None:
    return _selector(message) if message.HasField("selector") else None  # type: ignore[arg-type]


def _anchor(message: jobs_pb2.SlackAnchor) -> dict[str, str]:
    return {name: value for name in ("channel", "thread_ts", "message_ts", "user_id")
            if (value := getattr(message, name))}


def _line(row: list[str]) -> pb.GenerationLine:
    student_id, student, contact_id, contact, relationship, email, action, username, code, note = row
    return pb.GenerationLine(student_id=student_id, student_name=student, contact_id=contact_id,
                             contact_name=contact, relationship=relationship, email=email, action=ACTIONS[action],
                             username=username, code=code, note=note)


def _invitation(item: Invitation) -> pb.Invitation:
    from services.accounts.servicer import _timestamp

    row = item.row
    return pb.Invitation(username=row.username, name=f"{row.first_name} {row.last_name}".strip(), email=row.email,
                         state=STATES[item.state], issue_time=_timestamp(row.issued_at),
                         expire_time=_timestamp(row.expires_at), delivery_error=item.error)


def _state_counts(counts: dict[str, int]) -> list[pb.InvitationStateCount]:
    return [pb.InvitationStateCount(state=STATES[state], count=counts.get(state, 0)) for state in gr.INVITATION_STATES]


class GenerationServicer:
    """Mixed into AccountsServicer, which sets `generation` and `invitations`."""

    generation: Generation
    invitations: Invitations

    async def PlanGeneration(self, request: pb.PlanGenerationRequest, context: Context) -> pb.PlanGenerationResponse:
        from services.accounts.servicer import _timestamp

        who = WHO.get(request.guardians)
        if who is None:
            raise InvalidArgument("guardians holds an unknown value.", [FieldViolation("guardians", "unknown")])
        view = await self.generation.plan(_selector(request), who, request.line_limit, request.write_workbook)
        c = view.counts
        return pb.PlanGenerationResponse(
            plan_id=view.plan_id, summary=view.summary,
            counts=pb.GenerationCounts(
                students=c.students, lines=c.lines, accounts_to_create=c.accounts_to_create,
                accounts_gaining_students=c.accounts_gaining_students, links_to_add=c.links_to_add,
                complete=c.complete, skipped_lines=c.skipped_lines, skipped_contacts=c.skipped_contacts,
                students_without_account=c.students_without_account, possible_duplicates=c.possible_duplicates),
            reasons=[pb.ReasonCount(code=code, meaning=sc.lookup(code).meaning, count=number)
                     for code, number in c.reasons.items()],
            lines=[_line(row) for row in view.lines],
            possible_duplicates=[pb.PossibleDuplicate(contact_ids=ids.split(", "), names=names, emails=emails,
                                                      matched_on=same.removeprefix("name and "))
                                 for ids, names, emails, _phones, _addresses, same in view.duplicates],
            has_workbook=view.has_workbook, expire_time=_timestamp(view.expire_time))

    async def StartGeneration(self, request: pb.StartGenerationRequest, context: Context) -> jobs_pb2.Job:
        job = await self.generation.start(request.plan_id, request.send_invitations, _anchor(request.anchor))
        return job_to_proto(job)

    async def GetRosterDashboard(self, request: pb.GetRosterDashboardRequest,
                                 context: Context) -> pb.GetRosterDashboardResponse:
        board = await self.generation.dashboard(_selector(request))
        return pb.GetRosterDashboardResponse(
            selection=board.selection, students=board.students,
            lists=[pb.RosterListSummary(name=name, title=found.title, count=len(found.rows))
                   for name, found in board.lists.items()])

    async def DownloadRosterList(self, request: pb.DownloadRosterListRequest,
                                 context: Context) -> AsyncIterator[jobs_pb2.FileChunk]:

        filename, data = await self.generation.roster_list(_selector(request), request.name.strip())
        for chunk in file_chunks(filename, data):
            yield chunk

    async def ListInvitations(self, request: pb.ListInvitationsRequest,
                              context: Context) -> pb.ListInvitationsResponse:
        state = STATE_NAMES.get(request.state, "") if request.state else ""
        if request.state and not state:
            raise InvalidArgument("state holds an unknown value.", [FieldViolation("state", "unknown")])
        page = await self.invitations.lifecycle(_optional_selector(request), state, request.page_size,
                                                request.page_token)
        return pb.ListInvitationsResponse(invitations=[_invitation(i) for i in page.items],
                                          counts=_state_counts(page.counts), next_page_token=page.next_token,
                                          total_size=page.total)

    async def PreviewResendInvitations(self, request: pb.PreviewResendInvitationsRequest,
                                       context: Context) -> pb.PreviewResendInvitationsResponse:
        found = await self.invitations.resend_preview(_optional_selector(request), request.sample_size)
        return pb.PreviewResendInvitationsResponse(count=found.count, counts=_state_counts(found.counts),
                                                   sample=[_invitation(i) for i in found.sample],
                                                   subject=found.subject, text=found.text)

    async def StartResendInvitations(self, request: pb.StartResendInvitationsRequest,
                                     context: Context) -> jobs_pb2.Job:
        job = await self.invitations.start_resend(_optional_selector(request), _anchor(request.anchor),
                                                  request.request_id.strip())
        return job_to_proto(job)
