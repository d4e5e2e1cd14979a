"""The gRPC face of account care (part of AccountsServicer): policies, permissions, contact drift, staff clashes,
contact cards and the logons export. Protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import grpc

from plumbing.filechunks import file_chunks
from portal.accounts.v1 import accounts_pb2 as pb
from portal.common.v1 import jobs_pb2
from services.accounts.clashes import StaffClashes
from services.accounts.contact_cards import ContactCard, ContactCards
from services.accounts.domain import AccountType
from services.accounts.drift import ContactDrift
from services.accounts.drift_rules import Drift
from services.accounts.logons import LogonsExport
from services.accounts.permissions import Permissions
from services.accounts.policies import Policies
from services.accounts.policy_rules import Effective, PolicyValues, StoredPolicy
from services.accounts.servicer_resets import selected

Context = grpc.aio.ServicerContext
TWO_FACTOR_POLICIES = {"off": pb.TWO_FACTOR_POLICY_OFF, "optional": pb.TWO_FACTOR_POLICY_OPTIONAL,
                       "required": pb.TWO_FACTOR_POLICY_REQUIRED}
_TWO_FACTOR_NAMES = {number: name for name, number in TWO_FACTOR_POLICIES.items()}


@dataclass(frozen=True)
class AccountCare:
    """What the mixin needs."""

    policies: Policies
    permissions: Permissions
    drift: ContactDrift
    cards: ContactCards
    clashes: StaffClashes
    logons: LogonsExport


def _stamp(value: datetime | None) -> Any:
    from services.accounts.servicer import _timestamp

    return _timestamp(value)


def _time(message: Any, name: str) -> datetime | None:
    return getattr(message, name).ToDatetime(tzinfo=UTC) if message.HasField(name) else None


def policy_pb(policy: StoredPolicy) -> pb.Policy:
    v = policy.values
    message = pb.Policy(school=policy.school, two_factor=TWO_FACTOR_POLICIES.get(v.two_factor or "", 0),
                        updated_by=policy.updated_by)
    if v.must_change_password is not None:
        message.must_change_password = v.must_change_password
    if v.min_password_length is not None:
        message.min_password_length = v.min_password_length
    if v.invite_expiry_days is not None:
        message.invite_expiry_days = v.invite_expiry_days
    if v.default_permissions is not None:
        message.default_permissions.CopyFrom(pb.PermissionList(permissions=v.default_permissions))
    if policy.updated_at is not None:
        message.update_time.CopyFrom(_stamp(policy.updated_at))
    return message


def _values(message: pb.Policy) -> PolicyValues:
    return PolicyValues(
        must_change_password=message.must_change_password if message.HasField("must_change_password") else None,
        # An unknown number reaches the rules as text, which refuse it by name.
        two_factor=_TWO_FACTOR_NAMES.get(message.two_factor, str(message.two_factor)) if message.two_factor else None,
        min_password_length=message.min_password_length if message.HasField("min_password_length") else None,
        invite_expiry_days=message.invite_expiry_days if message.HasField("invite_expiry_days") else None,
        default_permissions=(tuple(message.default_permissions.permissions)
                             if message.HasField("default_permissions") else None))


def effective_pb(found: Effective) -> pb.EffectivePolicy:
    return pb.EffectivePolicy(
        must_change_password=found.must_change_password, two_factor=TWO_FACTOR_POLICIES[found.two_factor],
        min_password_length=found.min_password_length, invite_expiry_days=found.invite_expiry_days,
        default_permissions=found.default_permissions, schools=found.schools, sources=dict(found.sources))


def drift_pb(drift: Drift) -> pb.ContactDrift:
    pair = drift.pair
    return pb.ContactDrift(
        username=pair.username, contact_id=pair.contact_id, blocked=drift.blocked,
        fields=[pb.DriftField(field=f.field, account_value=f.account_value, contact_value=f.contact_value)
                for f in drift.fields], contact_update_time=_stamp(pair.contact_updated_at))


def card_pb(card: ContactCard) -> pb.ContactCard:
    c = card.contact
    return pb.ContactCard(
        contact=pb.Contact(id=c.id, first_name=c.first_name, last_name=c.last_name, email=c.email, phone=c.phone,
                           address=c.address, no_contact=c.no_contact),
        students=[pb.ContactStudent(
            student_id=s.student_id, first_name=s.first_name, last_name=s.last_name, school=s.school,
            grad_year=s.grad_year, group=s.group, relationship=s.relationship,
            parental_responsibility=s.parental_responsibility, primary=s.primary, linked=s.linked,
            permissions=s.permissions) for s in card.students],
        account_username=card.account_username, no_account_code=card.no_account_code,
        no_account_reason=card.no_account_reason)


class CareServicer:
    """Mixed into AccountsServicer, which sets `care`."""

    care: AccountCare

    # Policies -----------------------------------------------------------------------------------------------------

    async def ListPolicies(self, request: pb.ListPoliciesRequest, context: Context) -> pb.ListPoliciesResponse:
        district, schools = await self.care.policies.list()
        return pb.ListPoliciesResponse(district=policy_pb(district), schools=[policy_pb(p) for p in schools])

    async def GetPolicy(self, request: pb.GetPolicyRequest, context: Context) -> pb.Policy:
        return policy_pb(await self.care.policies.get(request.school))

    async def UpdatePolicy(self, request: pb.UpdatePolicyRequest, context: Context) -> pb.Policy:
        from services.accounts.servicer import _call

        saved = await self.care.policies.update(_call(request.request_id), request.policy.school,
                                                _values(request.policy), list(request.update_mask.paths),
                                                request.validate_only)
        return policy_pb(saved)

    async def GetEffectivePolicy(self, request: pb.GetEffectivePolicyRequest,
                                 context: Context) -> pb.EffectivePolicy:
        return effective_pb(await self.care.policies.effective(request.username, request.school))

    # Permissions --------------------------------------------------------------------------------------------------

    async def UpdateStudentPermissions(self, request: pb.UpdateStudentPermissionsRequest,
                                       context: Context) -> pb.Account:
        from services.accounts.servicer import _call, account_pb

        account = await self.care.permissions.update(_call(request.request_id), request.username,
                                                     request.student_id, tuple(request.grant), tuple(request.revoke))
        return account_pb(account)

    async def CheckStudentAccess(self, request: pb.CheckStudentAccessRequest,
                                 context: Context) -> pb.CheckStudentAccessResponse:
        found = await self.care.permissions.check(request.username, request.student_id, request.permission)
        return pb.CheckStudentAccessResponse(allowed=found.allowed, reason=found.reason)

    # Contact drift ------------------------------------------------------------------------------------------------

    async def ListContactDrift(self, request: pb.ListContactDriftRequest,
                               context: Context) -> pb.ListContactDriftResponse:
        page = await self.care.drift.list(tuple(request.usernames), _time(request, "as_of"), request.page_size,
                                          request.page_token)
        return pb.ListContactDriftResponse(drift=[drift_pb(d) for d in page.items], next_page_token=page.next_token,
                                           total_size=page.total, as_of=_stamp(page.as_of))

    async def ExportContactDrift(self, request: pb.ExportContactDriftRequest,
                                 context: Context) -> AsyncIterator[jobs_pb2.FileChunk]:

        filename, data = await self.care.drift.workbook(tuple(request.usernames), _time(request, "as_of"))
        for chunk in file_chunks(filename, data):
            yield chunk

    async def ApplyContactDrift(self, request: pb.ApplyContactDriftRequest,
                                context: Context) -> pb.ApplyContactDriftResponse:
        from services.accounts.servicer import _call

        done = await self.care.drift.apply(_call(request.request_id), tuple(request.usernames), request.all,
                                           _time(request, "as_of"))
        return pb.ApplyContactDriftResponse(
            applied_count=done.applied_count, applied=[drift_pb(d) for d in done.applied],
            not_applied_count=done.not_applied_count,
            not_applied=[pb.KeptAccount(username=k.username, reason=k.reason) for k in done.not_applied])

    # Clashes, contact cards, logons ---------------------------------------------------------------------------

    async def ListStaffClashes(self, request: pb.ListStaffClashesRequest,
                               context: Context) -> pb.ListStaffClashesResponse:
        page = await self.care.clashes.list(request.page_size, request.page_token)
        return pb.ListStaffClashesResponse(
            clashes=[pb.StaffClash(email=c.email, staff_username=c.staff_username, staff_schools=c.staff_schools,
                                   parent_username=c.parent_username, parent_schools=c.parent_schools,
                                   parent_contact_id=c.parent_contact_id, parent_name=c.parent_name)
                     for c in page.items], next_page_token=page.next_token, total_size=page.total)

    async def LookupContacts(self, request: pb.LookupContactsRequest, context: Context) -> pb.LookupContactsResponse:
        cards = await self.care.cards.lookup(request.contact_id_or_email)
        return pb.LookupContactsResponse(cards=[card_pb(card) for card in cards])

    async def ExportLogons(self, request: pb.ExportLogonsRequest,
                           context: Context) -> AsyncIterator[jobs_pb2.FileChunk]:

        where, _names = selected(request.selector if request.HasField("selector") else None, "selector")
        filename, data, _count = await self.care.logons.export(replace(where, type=AccountType.GUARDIAN))
        for chunk in file_chunks(filename, data):
            yield chunk
