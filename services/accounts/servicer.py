"""The gRPC face of the accounts service: protobuf in, domain calls, protobuf out. Nothing else happens here;
errors are domain ServiceErrors that the interceptor turns into statuses with google.rpc details."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import grpc
from google.protobuf import empty_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from plumbing.context import current_actor, current_request_id
from plumbing.errors import FieldViolation, InvalidArgument
from plumbing.filechunks import file_chunks
from plumbing.gcpause import paused_gc
from plumbing.jobs import job_to_proto
from portal.accounts.v1 import accounts_pb2 as pb
from portal.accounts.v1 import accounts_pb2_grpc
from portal.common.v1 import jobs_pb2
from services.accounts.directory import UPDATABLE, Directory
from services.accounts.domain import (
    Account,
    AccountDraft,
    AccountFilter,
    AccountRow,
    AccountStatus,
    AuditEvent,
    AuthOutcome,
    Call,
    Contact,
    Relationship,
    RosterEntry,
    RosterQuery,
    RosterResult,
    RowResult,
    Student,
    StudentSelector,
    TokenPurpose,
    TokenState,
    TwoFactor,
)
from services.accounts.jobs import AccountJobs
from services.accounts.plan_workers import PlanWorkers
from services.accounts.roster import Roster
from services.accounts.row_columns import ROW_ACTIONS, TYPE_NAMES, TYPES, result_columns, rows_from_columns
from services.accounts.servicer_care import AccountCare, CareServicer
from services.accounts.servicer_generation import GenerationParts, GenerationServicer
from services.accounts.servicer_resets import ResetsAndReports, ResetsServicer
from services.accounts.setpassword import SetPasswordLinks
from services.accounts.signin import SignIns

E = TypeVar("E")
Context = grpc.aio.ServicerContext

STATUSES = {AccountStatus.INVITED: pb.ACCOUNT_STATUS_INVITED, AccountStatus.ACTIVE: pb.ACCOUNT_STATUS_ACTIVE,
            AccountStatus.DISABLED: pb.ACCOUNT_STATUS_DISABLED}
TWO_FACTOR = {TwoFactor.OFF: pb.TWO_FACTOR_STATE_OFF, TwoFactor.REQUIRED: pb.TWO_FACTOR_STATE_REQUIRED,
              TwoFactor.ENROLLED: pb.TWO_FACTOR_STATE_ENROLLED}
PURPOSES = {TokenPurpose.INVITATION: pb.TOKEN_PURPOSE_INVITATION, TokenPurpose.RESET: pb.TOKEN_PURPOSE_RESET}
TOKEN_STATES = {TokenState.VALID: pb.TOKEN_STATE_VALID, TokenState.EXPIRED: pb.TOKEN_STATE_EXPIRED,
                TokenState.USED: pb.TOKEN_STATE_USED, TokenState.UNKNOWN: pb.TOKEN_STATE_UNKNOWN,
                TokenState.REVOKED: pb.TOKEN_STATE_REVOKED}
OUTCOMES = {AuthOutcome.OK: pb.AUTHENTICATE_OUTCOME_OK,
            AuthOutcome.INVALID_CREDENTIALS: pb.AUTHENTICATE_OUTCOME_INVALID_CREDENTIALS,
            AuthOutcome.TOTP_REQUIRED: pb.AUTHENTICATE_OUTCOME_TOTP_REQUIRED,
            AuthOutcome.TOTP_INVALID: pb.AUTHENTICATE_OUTCOME_TOTP_INVALID,
            AuthOutcome.THROTTLED: pb.AUTHENTICATE_OUTCOME_THROTTLED,
            AuthOutcome.DISABLED: pb.AUTHENTICATE_OUTCOME_DISABLED}


def _from_pb(mapping: Mapping[E, int], value: int, field: str) -> E | None:
    """The domain value of a proto enum; None for UNSPECIFIED; an unknown number is the caller's mistake."""
    if value == 0:
        return None
    for domain, number in mapping.items():
        if number == value:
            return domain
    raise InvalidArgument(f"{field} holds an unknown value ({value}).", [FieldViolation(field, "unknown value")])


def _call(request_id: str = "") -> Call:
    actor = current_actor()
    return Call(actor.id, actor.name, request_id.strip(), current_request_id())


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _time_or_none(message: Any, field: str) -> datetime | None:
    if not message.HasField(field):
        return None
    return getattr(message, field).ToDatetime(tzinfo=UTC)


def account_pb(account: Account) -> pb.Account:
    return pb.Account(
        id=account.id, username=account.username, first_name=account.first_name, last_name=account.last_name,
        email=account.email, type=TYPES[account.type], status=STATUSES[account.status], schools=account.schools,
        role=account.role, must_change_password=account.must_change_password,
        two_factor=TWO_FACTOR[account.two_factor], has_password=account.has_password,
        student_ids=account.student_ids, contact_id=account.contact_id, create_time=_timestamp(account.created_at),
        update_time=_timestamp(account.updated_at), last_sign_in_time=_timestamp(account.last_sign_in_at),
        links=[pb.StudentLink(student_id=link.student_id, permissions=link.permissions, school=link.school)
               for link in account.links])


def _student_pb(entry: RosterEntry) -> pb.Student:
    s = entry.student
    return pb.Student(
        id=s.id, first_name=s.first_name, last_name=s.last_name, grad_year=s.grad_year, group=s.group,
        school=s.school, status=s.status,
        contacts=[pb.StudentContact(
            contact=pb.Contact(id=c.contact.id, first_name=c.contact.first_name, last_name=c.contact.last_name,
                               email=c.contact.email, phone=c.contact.phone, address=c.contact.address,
                               no_contact=c.contact.no_contact),
            relationship=c.relationship, parental_responsibility=c.parental_responsibility, primary=c.primary,
            account_username=c.account_username) for c in entry.contacts])


def student_selector(message: jobs_pb2.Selector | None) -> StudentSelector:
    """The students a Selector means (none given: all)."""
    if message is None:
        return StudentSelector()
    kind = message.WhichOneof("kind") or "all"
    value = str(getattr(message, kind)) if kind in ("school", "group", "grad_year", "last_name_prefix") else ""
    return StudentSelector(kind, value, tuple(message.usernames.usernames), message.never_signed_in)


def _roster_pb(result: RosterResult) -> pb.BatchUpsertRosterResponse:
    return pb.BatchUpsertRosterResponse(
        students_created=result.students_created, students_updated=result.students_updated,
        contacts_created=result.contacts_created, contacts_updated=result.contacts_updated,
        relationships_added=result.relationships_added, unchanged=result.unchanged,
        changes=[pb.RosterChange(kind=c.kind, id=c.id, action=c.action, changed_fields=c.changed_fields)
                 for c in result.changes],
        account_drift=[pb.RosterAccountDrift(contact_id=d.contact_id, username=d.username, fields=d.fields,
                                             applied=d.applied) for d in result.account_drift])


def _audit_pb(event: AuditEvent) -> pb.AuditEvent:
    return pb.AuditEvent(time=_timestamp(event.time), actor_id=event.actor_id, actor_name=event.actor_name,
                         action=event.action, target=event.target, request_id=event.request_id, detail=event.detail)


def _contact(message: pb.Contact) -> Contact:
    return Contact(message.id, message.first_name, message.last_name, message.email, message.phone,
                   message.address, message.no_contact)


def _row(message: pb.AccountRow) -> AccountRow:
    # An unknown number reaches the rules as text, which report it on the row (E_USER_TYPE).
    account_type = TYPE_NAMES.get(message.type, f"type {message.type}") if message.type else ""
    # Positional: this runs for every row of every batch.
    return AccountRow(message.row_number, message.username, message.first_name, message.last_name, message.email,
                      message.password, account_type, tuple(message.student_ids), message.must_change_password,
                      message.enabled, message.contact_id, message.school)


def _row_result(result: RowResult) -> pb.AccountRowResult:
    message = pb.AccountRowResult(row_number=result.row_number, action=ROW_ACTIONS[result.action],
                                  username=result.username)
    # Only what is set: this runs for every row of every batch.
    if result.problems:
        message.problems.extend(pb.RowProblem(code=p.code, column=p.field, message=p.message, warning=p.warning)
                                for p in result.problems)
    if result.new_student_ids:
        message.new_student_ids.extend(result.new_student_ids)
    if result.changed_fields:
        message.changed_fields.extend(result.changed_fields)
    if result.invitation_queued:
        message.invitation_queued = True
    return message


def _changes(request: pb.UpdateAccountRequest) -> tuple[str, dict[str, Any]]:
    """The account to change and the changes by update_mask path (an empty mask: the fields that are set)."""
    account = request.account
    identity = request.username or account.username
    paths = [p.removeprefix("account.") for p in request.update_mask.paths]
    if not paths:
        paths = [name for name in ("first_name", "last_name", "email", "role", "contact_id") if getattr(account, name)]
        paths += [name for name in ("type", "status", "two_factor", "schools") if getattr(account, name)]
        paths += ["must_change_password"] if account.must_change_password else []
        paths += ["password"] if request.password else []
    changes: dict[str, Any] = {}
    for path in paths:
        if path == "username":
            continue
        if path == "password":
            changes[path] = request.password
        elif path == "type":
            changes[path] = _from_pb(TYPES, account.type, "account.type")
        elif path == "status":
            changes[path] = _from_pb(STATUSES, account.status, "account.status")
        elif path == "two_factor":
            changes[path] = _from_pb(TWO_FACTOR, account.two_factor, "account.two_factor")
        elif path == "schools":
            changes[path] = tuple(account.schools)
        elif path in UPDATABLE:
            changes[path] = getattr(account, path)
        else:
            changes[path] = None
    if request.username and account.username and account.username != request.username:
        changes["username"] = account.username
    return identity, changes


class AccountsServicer(ResetsServicer, GenerationServicer, CareServicer, accounts_pb2_grpc.AccountsServiceServicer):
    def __init__(self, directory: Directory, roster: Roster, sign_ins: SignIns, links: SetPasswordLinks,
                 jobs: AccountJobs, reports: ResetsAndReports, generation: GenerationParts,
                 care: AccountCare, planners: PlanWorkers | None = None) -> None:
        self.directory = directory
        self.planners = planners
        self.roster = roster
        self.sign_ins = sign_ins
        self.links = links
        self.jobs = jobs
        self.resets, self.bulk_reset, self.usage_report = reports
        self.generation, self.invitations = generation
        self.care = care

    async def GetAccount(self, request: pb.GetAccountRequest, context: Context) -> pb.Account:
        return account_pb(await self.directory.get(request.username_or_email))

    async def ListAccounts(self, request: pb.ListAccountsRequest, context: Context) -> pb.ListAccountsResponse:
        where = AccountFilter(
            type=_from_pb(TYPES, request.type, "type"), status=_from_pb(STATUSES, request.status, "status"),
            school=request.school, group=request.group, grad_year=request.grad_year,
            last_name_prefix=request.last_name_prefix.strip(), linked_student_id=request.linked_student_id.strip(),
            never_signed_in=request.never_signed_in, usernames=tuple(request.usernames))
        page = await self.directory.list(where, request.page_size, request.page_token)
        return pb.ListAccountsResponse(accounts=[account_pb(a) for a in page.items], next_page_token=page.next_token,
                                       total_size=page.total)

    async def CreateAccount(self, request: pb.CreateAccountRequest, context: Context) -> pb.Account:
        a = request.account
        draft = AccountDraft(
            username=a.username, first_name=a.first_name, last_name=a.last_name, email=a.email,
            type=_from_pb(TYPES, a.type, "account.type"), schools=tuple(a.schools), role=a.role,
            must_change_password=a.must_change_password, student_ids=tuple(a.student_ids), contact_id=a.contact_id,
            status=_from_pb(STATUSES, a.status, "account.status"),
            two_factor=_from_pb(TWO_FACTOR, a.two_factor, "account.two_factor"))
        account = await self.directory.create(_call(request.request_id), draft, request.password,
                                              request.send_invitation, request.validate_only)
        return account_pb(account)

    async def UpdateAccount(self, request: pb.UpdateAccountRequest, context: Context) -> pb.Account:
        identity, changes = _changes(request)
        return account_pb(await self.directory.update(_call(request.request_id), identity, changes))

    async def DeleteAccount(self, request: pb.DeleteAccountRequest, context: Context) -> empty_pb2.Empty:
        await self.directory.delete(_call(request.request_id), request.username)
        return empty_pb2.Empty()

    async def LinkStudents(self, request: pb.LinkStudentsRequest, context: Context) -> pb.Account:
        account = await self.directory.link(_call(request.request_id), request.username, tuple(request.student_ids))
        return account_pb(account)

    async def UnlinkStudents(self, request: pb.UnlinkStudentsRequest, context: Context) -> pb.Account:
        account = await self.directory.unlink(_call(request.request_id), request.username,
                                              tuple(request.student_ids))
        return account_pb(account)

    async def SearchRoster(self, request: pb.SearchRosterRequest, context: Context) -> pb.SearchRosterResponse:
        selector = student_selector(request.selector if request.HasField("selector") else None)
        query = RosterQuery(selector, request.student_id, request.contact_id, request.contact_email,
                            request.include_contacts)
        page = await self.roster.search(query, request.page_size, request.page_token)
        return pb.SearchRosterResponse(students=[_student_pb(e) for e in page.items], next_page_token=page.next_token,
                                       total_size=page.total)

    async def BatchUpsertRoster(self, request: pb.BatchUpsertRosterRequest,
                                context: Context) -> pb.BatchUpsertRosterResponse:
        students = [Student(s.id, s.first_name, s.last_name, s.grad_year, s.group, s.school, s.status)
                    for s in request.students]
        contacts = {c.id: _contact(c) for c in request.contacts}
        relationships = [Relationship(r.student_id, r.contact_id, r.relationship, r.parental_responsibility,
                                      r.primary) for r in request.relationships]
        for s in request.students:
            for link in s.contacts:
                contacts.setdefault(link.contact.id, _contact(link.contact))
                relationships.append(Relationship(s.id, link.contact.id, link.relationship,
                                                  link.parental_responsibility, link.primary))
        result = await self.roster.upsert(_call(request.request_id), students, list(contacts.values()),
                                          relationships, request.validate_only)
        return _roster_pb(result)

    async def BatchApplyAccountRows(self, request: pb.BatchApplyAccountRowsRequest,
                                    context: Context) -> pb.BatchApplyAccountRowsResponse:
        columnar = request.HasField("columns")
        if columnar and request.validate_only and self.planners is not None:
            planned = await self.planners.plan(request)  # a large trial-run batch, planned in a worker process
            if planned is not None:
                return planned
        with paused_gc():  # thousands of rows each way: the collector would sweep them again and again
            rows = rows_from_columns(request.columns) if columnar else [_row(r) for r in request.rows]
        call = _call(request.request_id)
        elsewhere = (partial(self.planners.apply, request, self.directory.links, call)
                     if columnar and self.planners is not None else None)
        batch = await self.directory.apply_rows(call, rows, request.validate_only, request.send_invitations,
                                                request.job_id, request.links_only, elsewhere)
        with paused_gc():
            if columnar:
                return pb.BatchApplyAccountRowsResponse(columns=result_columns(batch.results))
            return pb.BatchApplyAccountRowsResponse(results=[_row_result(r) for r in batch.results])

    async def Authenticate(self, request: pb.AuthenticateRequest, context: Context) -> pb.AuthenticateResponse:
        result = await self.sign_ins.authenticate(request.username, request.password, request.totp_code,
                                                  request.source)
        return pb.AuthenticateResponse(
            outcome=OUTCOMES[result.outcome], account=account_pb(result.account) if result.account else None,
            must_change_password=result.must_change_password,
            must_enroll_two_factor=result.must_enroll_two_factor, retry_after_seconds=result.retry_after_seconds)

    async def ListSignIns(self, request: pb.ListSignInsRequest, context: Context) -> pb.ListSignInsResponse:
        page = await self.sign_ins.list(request.username, _time_or_none(request, "start_time"),
                                        _time_or_none(request, "end_time"), request.successful_only,
                                        request.page_size, request.page_token)
        return pb.ListSignInsResponse(
            sign_ins=[pb.SignIn(username=s.username, time=_timestamp(s.time), success=s.success, source=s.source)
                      for s in page.items], next_page_token=page.next_token)

    async def IssueSetPasswordToken(self, request: pb.IssueSetPasswordTokenRequest,
                                    context: Context) -> pb.IssueSetPasswordTokenResponse:
        issued = await self.links.issue(_call(request.request_id), request.username,
                                        _from_pb(PURPOSES, request.purpose, "purpose"), request.send_email)
        return pb.IssueSetPasswordTokenResponse(expire_time=_timestamp(issued.expire_time), token=issued.token)

    async def InspectSetPasswordToken(self, request: pb.InspectSetPasswordTokenRequest,
                                      context: Context) -> pb.InspectSetPasswordTokenResponse:
        found = await self.links.inspect(request.token)
        return pb.InspectSetPasswordTokenResponse(state=TOKEN_STATES[found.state], username=found.username)

    async def RedeemSetPasswordToken(self, request: pb.RedeemSetPasswordTokenRequest, context: Context) -> pb.Account:
        return account_pb(await self.links.redeem(_call(request.request_id), request.token, request.new_password))

    async def EnrollTwoFactor(self, request: pb.EnrollTwoFactorRequest,
                              context: Context) -> pb.EnrollTwoFactorResponse:
        enrolment = await self.sign_ins.enroll(_call(request.request_id), request.username)
        return pb.EnrollTwoFactorResponse(otpauth_uri=enrolment.otpauth_uri, recovery_codes=enrolment.recovery_codes)

    async def ConfirmTwoFactor(self, request: pb.ConfirmTwoFactorRequest, context: Context) -> pb.Account:
        return account_pb(await self.sign_ins.confirm(_call(request.request_id), request.username,
                                                      request.totp_code))

    async def RevertAccountChanges(self, request: pb.RevertAccountChangesRequest,
                                   context: Context) -> pb.RevertAccountChangesResponse:
        result = await self.directory.revert(_call(request.request_id), tuple(request.created_usernames),
                                             [(link.username, tuple(link.student_ids)) for link in request.added_links])
        return pb.RevertAccountChangesResponse(
            removed_usernames=result.removed_usernames, links_removed=result.links_removed,
            kept=[pb.KeptAccount(username=k.username, reason=k.reason) for k in result.kept])

    async def ListAuditEvents(self, request: pb.ListAuditEventsRequest,
                              context: Context) -> pb.ListAuditEventsResponse:
        page = await self.directory.audit_events(request.target, request.actor_id, request.page_size,
                                                 request.page_token)
        return pb.ListAuditEventsResponse(events=[_audit_pb(e) for e in page.items], next_page_token=page.next_token)

    # Jobs ----------------------------------------------------------------------------------------------------

    async def GetJob(self, request: pb.GetJobRequest, context: Context) -> jobs_pb2.Job:
        return job_to_proto(await self.jobs.get(request.id))

    async def ListJobs(self, request: pb.ListJobsRequest, context: Context) -> pb.ListJobsResponse:
        size = min(request.page_size or 20, 100)
        records = await self.jobs.recent(active_only=request.active_only, limit=size + 1,
                                         before=request.page_token or None)
        more = len(records) > size
        records = records[:size]
        return pb.ListJobsResponse(jobs=[job_to_proto(r) for r in records],
                                   next_page_token=records[-1].id if more and records else "")

    async def DownloadJobFile(self, request: pb.DownloadJobFileRequest, context: Context
                              ) -> AsyncIterator[jobs_pb2.FileChunk]:
        filename, data = await self.jobs.file(request.job_id, request.name)
        for chunk in file_chunks(filename, data):
            yield chunk
