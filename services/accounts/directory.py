"""Account operations: look up, list, create, update, delete, link and unlink, and batches of account rows.

Each method checks the rules first (pure), hashes any password in the process pool before opening a transaction,
then does its database work in one transaction through `Mutations` (idempotency record and audit events with it).
A batch of rows is planned and written by `services.accounts.batches`, in a worker process when it can be.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from plumbing import status_codes as sc
from plumbing.db import Database
from plumbing.errors import AlreadyExists, FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from services.accounts import paging, planning, rules
from services.accounts.batches import (
    BatchApplier,
    PasswordsToHash,
    Planned,
    account_columns,
    check_batch_size,
    plan_batch,
    prepare_batch,
    read_plan,
)
from services.accounts.domain import (
    DEFAULT_ROLES,
    Account,
    AccountDraft,
    AccountFilter,
    AccountRow,
    AccountStatus,
    AccountType,
    AuditEvent,
    BatchResult,
    Call,
    Clock,
    KeptAccount,
    Page,
    Problem,
    RevertResult,
    TokenPurpose,
    TwoFactor,
)
from services.accounts.hashing import PasswordHashing
from services.accounts.mutations import Audit, Mutations, account_or_404, account_target
from services.accounts.notices import AccountChange, change_notices
from services.accounts.policy_store import effective_for_accounts, load_book, student_schools
from services.accounts.setpassword import LinkSettings, LinkTarget, issue_links
from services.accounts.store import AccountStore, UsernameTaken, new_id

# Fields UpdateAccount may change (AIP-134 update_mask paths).
UPDATABLE = ("username", "first_name", "last_name", "email", "type", "schools", "role", "must_change_password",
             "status", "two_factor", "contact_id", "password")


def _refuse(problems: Sequence[Problem]) -> InvalidArgument:
    """INVALID_ARGUMENT naming each field that breaks a rule; the first problem's code is the reason."""
    errors = [p for p in problems if not p.warning]
    return InvalidArgument(" ".join(p.message for p in errors),
                           [FieldViolation(p.field, p.message) for p in errors], reason=errors[0].code)


def _taken(username: str, holder: Account) -> AlreadyExists:
    schools = sorted({*holder.schools, *(link.school for link in holder.links if link.school)}, key=str.lower)
    where = f" at {' and '.join(schools)}" if schools else ""
    message = (f"The username '{username}' is already taken by the {holder.type.value} account "
               f"'{holder.username}'{where}: usernames are unique across the whole district whatever the case or the "
               "account type. Choose another username.")
    return AlreadyExists(message, [FieldViolation("account.username", message)], reason=sc.E_USERNAME_TAKEN.code)


def _email_in_use(email: str, owner: str) -> AlreadyExists:
    message = (f"The email address '{email}' already belongs to the account '{owner}': one person gets one "
               "account, so use that account, or correct the email.")
    return AlreadyExists(message, [FieldViolation("account.email", message)], reason=sc.E_EMAIL_IN_USE.code)


def _no_contact(contact_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"The roster marks contact {contact_id} with a court order or no-contact flag: they must not get access "
        "to any student. Correct the flag in the school's information system first if it is wrong.",
        reason=sc.E_NO_CONTACT.code)


def _check_schools(schools: Sequence[str]) -> tuple[tuple[str, ...], list[Problem]]:
    checked = [rules.check_text(school, "account.schools", "school name") for school in rules.clean_ids(schools)]
    return tuple(name for name, _ in checked), [problem for _, found in checked for problem in found]


@dataclass(frozen=True)
class _NewAccount:
    """A draft that passed the rules."""

    username: str
    first_name: str
    last_name: str
    email: str
    type: AccountType
    role: str
    status: AccountStatus
    two_factor: TwoFactor
    must_change_password: bool
    schools: tuple[str, ...]
    student_ids: tuple[str, ...]
    contact_id: str


# Where a batch to apply goes first when the service can hand it to a worker process (given the time of the
# change): its answer once the worker has written it, or only its plan when passwords must be hashed first, or None
# for the service to do it all.
Applier = Callable[[datetime], Awaitable[BatchResult | Planned | None]]


class Directory:
    def __init__(self, db: Database, store: AccountStore, mutations: Mutations, hashing: PasswordHashing,
                 links: LinkSettings, clock: Clock, emails_queued: Callable[[], None]) -> None:
        self.db = db
        self.store = store
        self.mutations = mutations
        self.hashing = hashing
        self.links = links
        self.clock = clock
        self.emails_queued = emails_queued
        self.batches = BatchApplier(store, mutations, links)

    # Reading ----------------------------------------------------------------------------------------------------

    def _get(self, username_or_email: str) -> Account:
        value = username_or_email.strip()
        if not value:
            raise InvalidArgument("Give a username or an email address.",
                                  [FieldViolation("username_or_email", "required")], reason=sc.E_REQUIRED.code)
        with self.db.read() as session:
            account = self.store.account_by_username(session, value)
            if account is None and "@" in value:
                account = self.store.account_by_email(session, value)
        if account is None:
            raise NotFound(f"No account has the username or email address '{value}'.", reason="ACCOUNT_NOT_FOUND")
        return account

    async def get(self, username_or_email: str) -> Account:
        return await self.db.run(self._get, username_or_email)

    def _list(self, where: AccountFilter, size: int, token: str) -> Page[Account]:
        kind = paging.list_kind("accounts", where)
        position = paging.decode(kind, token)
        with self.db.read() as session:
            accounts, total = self.store.list_accounts(session, where, position[0] if position else None, size + 1)
        more = len(accounts) > size
        accounts = accounts[:size]
        next_token = paging.encode(kind, accounts[-1].username.lower()) if more else ""
        return Page(tuple(accounts), next_token, total)

    async def list(self, where: AccountFilter, page_size: int, page_token: str) -> Page[Account]:
        return await self.db.run(self._list, where, paging.page_size(page_size), page_token)

    def _audit_events(self, target: str, actor_id: str, size: int, token: str) -> Page[AuditEvent]:
        kind = paging.list_kind("audit", (target, actor_id))
        position = paging.decode(kind, token)
        with self.db.read() as session:
            found = self.store.list_audit(session, target, actor_id, int(position[0]) if position else None, size + 1)
        more = len(found) > size
        found = found[:size]
        return Page(tuple(event for _, event in found), paging.encode(kind, found[-1][0]) if more else "")

    async def audit_events(self, target: str, actor_id: str, page_size: int, page_token: str) -> Page[AuditEvent]:
        if target.lower().startswith("account:"):
            target = account_target(target.split(":", 1)[1])
        return await self.db.run(self._audit_events, target, actor_id, paging.page_size(page_size), page_token)

    # Create -----------------------------------------------------------------------------------------------------

    @staticmethod
    def _check_new(draft: AccountDraft, password: str, send_invitation: bool) -> _NewAccount:
        problems: list[Problem] = []
        username, found = rules.check_username(draft.username, "account.username")
        problems += found
        first_name, found = rules.check_name(draft.first_name, "account.first_name", "first name", required=True)
        problems += found
        last_name, found = rules.check_name(draft.last_name, "account.last_name", "last name", required=True)
        problems += found
        email, found = rules.check_email(draft.email, "account.email")
        problems += found
        problems += rules.check_password(password, username, "password")
        schools, found = _check_schools(draft.schools)
        problems += found
        contact_id, found = rules.check_text(draft.contact_id, "account.contact_id", "contact id", rules.ID_MAX)
        problems += found
        account_type = draft.type or AccountType.GUARDIAN
        role, found = rules.check_text(draft.role, "account.role", "role", 40)
        problems += found
        if account_type == AccountType.GUARDIAN and role and role != DEFAULT_ROLES[account_type]:
            problems.append(Problem(sc.E_USER_TYPE.code, "account.role",
                                    "Parent and guardian accounts always have the read-only 'parent' role: leave "
                                    "the role empty."))
        if draft.two_factor == TwoFactor.ENROLLED:
            problems.append(Problem(sc.E_FLAG_VALUE.code, "account.two_factor",
                                    "Two-factor sign-in becomes ENROLLED when the holder enrols: set REQUIRED to "
                                    "ask them to enrol at their next sign-in."))
        if send_invitation and not password and not email:
            problems.append(Problem(sc.E_REQUIRED.code, "account.email",
                                    "An invitation needs an email address: add the email, or give a password."))
        if problems:
            raise _refuse(problems)
        return _NewAccount(
            username=username, first_name=first_name, last_name=last_name, email=email, type=account_type,
            role=role or DEFAULT_ROLES[account_type], status=draft.status or AccountStatus.INVITED,
            two_factor=draft.two_factor or TwoFactor.OFF, must_change_password=draft.must_change_password,
            schools=schools, student_ids=rules.clean_ids(draft.student_ids), contact_id=contact_id)

    def _resolve_new(self, session: Session, new: _NewAccount) -> str:
        """Check what the database must agree to; returns the contact id (given, or matched by email)."""
        holder = self.store.account_by_username(session, new.username)
        if holder is not None:
            raise _taken(new.username, holder)
        if new.email and (owner := self.store.email_owner(session, new.email)) is not None:
            raise _email_in_use(new.email, owner)
        known = self.store.existing_students(session, new.student_ids)
        unknown = [s for s in new.student_ids if s not in known]
        if unknown:
            raise _refuse([rules.unknown_students_problem(unknown, "account.student_ids")])
        contact_id = new.contact_id
        if contact_id:
            contact = self.store.contact(session, contact_id)
        else:
            matches = self.store.contacts_by_email(session, new.email) if new.email else []
            contact = matches[0] if len(matches) == 1 else None
            contact_id = contact.id if contact else ""
        if contact is not None and contact.no_contact:
            raise _no_contact(contact.id)
        return contact_id

    def _check_policy_password(self, new: _NewAccount, password: str) -> None:
        """The password against the policy of the new account's schools (its own and its students')."""
        with self.db.read() as session:
            schools = [*new.schools, *student_schools(session, new.student_ids).values()]
            minimum = load_book(session).for_schools(schools).min_password_length
        if problems := rules.check_password(password, new.username, "password", minimum):
            raise _refuse(problems)

    def _dry_create(self, new: _NewAccount, has_password: bool) -> Account:
        with self.db.read() as session:
            contact_id = self._resolve_new(session, new)
        now = self.clock()
        return Account(
            id="", username=new.username, first_name=new.first_name, last_name=new.last_name, email=new.email,
            type=new.type, status=new.status, schools=tuple(sorted(new.schools)), role=new.role,
            must_change_password=new.must_change_password, two_factor=new.two_factor, has_password=has_password,
            student_ids=tuple(sorted(new.student_ids)), contact_id=contact_id, created_at=now, updated_at=now,
            last_sign_in_at=None)

    def _create(self, session: Session, audit: Audit, new: _NewAccount, password_hash: str | None,
                invite: bool) -> Account:
        contact_id = self._resolve_new(session, new)
        account_id = new_id()
        self.store.insert_accounts(session, [account_columns(
            account_id, new.username, new.first_name, new.last_name, new.email, new.type, new.role, new.status,
            new.must_change_password, new.two_factor, password_hash, contact_id, audit.now)])
        self.store.add_schools(session, [(account_id, s) for s in new.schools])
        self.store.add_links(session, [(account_id, s) for s in new.student_ids], audit.now)
        invited = invite and password_hash is None and bool(new.email) and new.status != AccountStatus.DISABLED
        if invited:
            target = LinkTarget(account_id, new.username, new.first_name, new.email, next(iter(new.schools), ""))
            issue_links(self.store, session, self.links, [target], TokenPurpose.INVITATION, audit.now, True,
                        new_accounts=True)
        audit.record("account.create", account_target(new.username), username=new.username, type=new.type.value,
                     email=new.email, status=new.status.value, schools=list(new.schools),
                     student_ids=list(new.student_ids), contact_id=contact_id, password_set=password_hash is not None,
                     invitation=invited)
        account = self.store.account(session, account_id)
        assert account is not None
        return account

    async def create(self, call: Call, draft: AccountDraft, password: str, send_invitation: bool,
                     validate_only: bool) -> Account:
        new = self._check_new(draft, password, send_invitation)
        if validate_only:
            return await self.db.run(self._dry_create, new, bool(password))
        stored = await self.db.run(self.mutations.replay, call, "CreateAccount", Account)
        if stored is not None:
            return stored.value
        if password:
            await self.db.run(self._check_policy_password, new, password)
        password_hash = (await self.hashing.hash_many([password]))[0] if password else None
        try:
            account = await self.db.run(self.mutations.run, call, "CreateAccount", Account,
                                        lambda session, audit: self._create(session, audit, new, password_hash,
                                                                            send_invitation))
        except UsernameTaken:
            holder = await self.db.run(self._get, new.username)
            raise _taken(new.username, holder) from None
        if send_invitation:
            self.emails_queued()
        return account

    # Update -----------------------------------------------------------------------------------------------------

    @staticmethod
    def _check_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
        """Changes by update_mask path, checked by the rules; the values as they will be stored."""
        unknown = [path for path in changes if path not in UPDATABLE]
        if unknown:
            raise InvalidArgument(
                f"These fields cannot be changed with UpdateAccount: {', '.join(unknown)}. Use LinkStudents and "
                "UnlinkStudents for students; the others are " + ", ".join(UPDATABLE) + ".",
                [FieldViolation("update_mask", f"unknown or read-only path '{p}'") for p in unknown])
        if not changes:
            raise InvalidArgument("Say which fields to change in update_mask.",
                                  [FieldViolation("update_mask", "no field to change")])
        problems: list[Problem] = []
        checked: dict[str, Any] = {}
        for path, value in changes.items():
            found: list[Problem] = []
            if path == "username":
                checked[path], found = rules.check_username(value, "account.username")
            elif path in ("first_name", "last_name"):
                label = path.replace("_", " ")
                checked[path], found = rules.check_name(value, f"account.{path}", label, required=True)
            elif path == "email":
                checked[path], found = rules.check_email(value, "account.email")
            elif path == "schools":
                checked[path], found = _check_schools(value)
            elif path == "contact_id":
                checked[path], found = rules.check_text(value, "account.contact_id", "contact id", rules.ID_MAX)
            elif path == "role":
                checked[path], found = rules.check_text(value, "account.role", "role", 40)
            elif path in ("type", "status", "two_factor"):
                if value is None:
                    found = [Problem(sc.E_REQUIRED.code, f"account.{path}", f"Give the new {path.replace('_', ' ')}.")]
                elif path == "two_factor" and value == TwoFactor.ENROLLED:
                    found = [Problem(sc.E_FLAG_VALUE.code, "account.two_factor",
                                     "Two-factor sign-in becomes ENROLLED when the holder enrols: set REQUIRED to "
                                     "ask them to enrol, or OFF to turn it off.")]
                checked[path] = value
            elif path == "password":
                if not value:
                    found = [Problem(sc.E_REQUIRED.code, "password", "Type the new password.")]
                checked[path] = value
            else:
                checked[path] = value
            problems += found
        if "password" in checked and not problems:
            username = checked.get("username", "")
            problems += rules.check_password(checked["password"], username, "password")
        if problems:
            raise _refuse(problems)
        return checked

    def _update(self, session: Session, audit: Audit, username: str, changes: dict[str, Any],
                password_hash: str | None) -> Account:
        account = account_or_404(self.store, session, username)
        if "password" in changes:
            policy = effective_for_accounts(session, [account.id])[account.id]
            # Neither the username the account has nor the one it will have; the policy's minimum length.
            for name in {account.username, changes.get("username", account.username)}:
                if problems := rules.check_password(changes["password"], name, "password",
                                                    policy.min_password_length):
                    raise _refuse(problems)
            if "must_change_password" not in changes:
                changes = {**changes, "must_change_password": policy.must_change_password}
        values: dict[str, Any] = {}
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}

        def change(column: str, old: Any, new: Any) -> None:
            if old != new:
                values[column] = new
                before[column] = old
                after[column] = new

        new_type = changes.get("type", account.type)
        if "username" in changes and changes["username"] != account.username:
            new_name = changes["username"]
            if new_name.lower() != account.username.lower():
                holder = self.store.account_by_username(session, new_name)
                if holder is not None:
                    raise _taken(new_name, holder)
            change("username", account.username, new_name)
            values["username_key"] = new_name.lower()
        for name in ("first_name", "last_name"):
            if name in changes:
                change(name, getattr(account, name), changes[name])
        if "last_name" in values:
            values["last_name_key"] = values["last_name"].lower()
        if "email" in changes and changes["email"] != account.email:
            email = changes["email"]
            if email and email.lower() != account.email.lower():
                owner = self.store.email_owner(session, email, except_id=account.id)
                if owner is not None:
                    raise _email_in_use(email, owner)
            change("email", account.email, email)
            values["email_key"] = email.lower()
        if "type" in changes:
            change("type", account.type.value, new_type.value)
        role = changes.get("role", account.role if "type" not in changes else "") or DEFAULT_ROLES[new_type]
        if new_type == AccountType.GUARDIAN and role != DEFAULT_ROLES[new_type]:
            raise _refuse([Problem(sc.E_USER_TYPE.code, "account.role",
                                   "Parent and guardian accounts always have the read-only 'parent' role.")])
        change("role", account.role, role)
        if "must_change_password" in changes:
            change("must_change_password", account.must_change_password, bool(changes["must_change_password"]))
        if "status" in changes:
            status = changes["status"]
            if status == AccountStatus.ACTIVE and account.status == AccountStatus.DISABLED and not (
                    account.has_password or account.last_sign_in_at):
                status = AccountStatus.INVITED  # enabled again, still waiting for its holder
            change("status", account.status.value, status.value)
        if "contact_id" in changes:
            contact_id = changes["contact_id"]
            if contact_id and contact_id != account.contact_id:
                contact = self.store.contact(session, contact_id)
                if contact is not None and contact.no_contact:
                    raise _no_contact(contact_id)
            change("contact_id", account.contact_id, contact_id)
        if "two_factor" in changes:
            wanted: TwoFactor = changes["two_factor"]
            if wanted == TwoFactor.OFF and account.two_factor != TwoFactor.OFF:
                self.store.remove_two_factor(session, account.id)
                change("two_factor", account.two_factor.value, TwoFactor.OFF.value)
            elif wanted == TwoFactor.REQUIRED and account.two_factor == TwoFactor.OFF:
                change("two_factor", account.two_factor.value, TwoFactor.REQUIRED.value)
        if password_hash is not None:
            values["password_hash"] = password_hash
            after["password"] = "changed"
            self.store.revoke_tokens(session, [account.id], None, audit.now)
        if "schools" in changes:
            known = {s.lower() for s in account.schools}
            added = [s for s in changes["schools"] if s.lower() not in known]
            self.store.add_schools(session, [(account.id, s) for s in added])
            wanted_schools = {s.lower() for s in changes["schools"]}
            removed = [s for s in account.schools if s.lower() not in wanted_schools]
            self.store.remove_schools(session, account.id, removed)
            if added or removed:
                before["schools"], after["schools"] = list(account.schools), list(changes["schools"])
        if values:
            values["updated_at"] = audit.now
            self.store.update_account(session, account.id, values)
        if after:
            audit.record("account.update", account_target(values.get("username", account.username)),
                         before=before, after=after)
        refreshed = self.store.account(session, account.id)
        assert refreshed is not None
        self.store.enqueue_emails(session, change_notices(AccountChange(
            account.first_name, account.username, refreshed.username, account.email, refreshed.email,
            school=next(iter(refreshed.schools), "")), self.links.school_name))
        return refreshed

    async def update(self, call: Call, username: str, changes: Mapping[str, Any]) -> Account:
        checked = self._check_changes(changes)
        stored = await self.db.run(self.mutations.replay, call, "UpdateAccount", Account)
        if stored is not None:
            return stored.value
        password = checked.get("password")
        password_hash = (await self.hashing.hash_many([password]))[0] if password else None
        try:
            updated = await self.db.run(self.mutations.run, call, "UpdateAccount", Account,
                                        lambda session, audit: self._update(session, audit, username, checked,
                                                                            password_hash))
        except UsernameTaken:
            holder = await self.db.run(self._get, checked["username"])
            raise _taken(checked["username"], holder) from None
        if "username" in checked or "email" in checked:
            self.emails_queued()  # a notice of the change may be waiting in the outbox
        return updated

    # Delete, link, unlink ---------------------------------------------------------------------------------------

    async def delete(self, call: Call, username: str) -> None:
        def work(session: Session, audit: Audit) -> None:
            account = account_or_404(self.store, session, username)
            self.store.delete_accounts(session, [account.id])
            audit.record("account.delete", account_target(account.username), username=account.username,
                         type=account.type.value, email=account.email, student_ids=list(account.student_ids))

        await self.db.run(self.mutations.run, call, "DeleteAccount", type(None), work)

    async def link(self, call: Call, username: str, student_ids: Sequence[str]) -> Account:
        wanted = rules.clean_ids(student_ids)
        if not wanted:
            raise InvalidArgument("Give at least one student id to link.",
                                  [FieldViolation("student_ids", "required")], reason=sc.E_REQUIRED.code)

        def work(session: Session, audit: Audit) -> Account:
            account = account_or_404(self.store, session, username)
            known = self.store.existing_students(session, wanted)
            unknown = [s for s in wanted if s not in known]
            if unknown:
                raise _refuse([rules.unknown_students_problem(unknown, "student_ids")])
            if account.contact_id:
                contact = self.store.contact(session, account.contact_id)
                if contact is not None and contact.no_contact:
                    raise _no_contact(contact.id)
            added = [s for s in wanted if s not in account.student_ids]
            if added:
                self.store.add_links(session, [(account.id, s) for s in added], audit.now)
                self.store.update_account(session, account.id, {"updated_at": audit.now})
                audit.record("account.link", account_target(account.username), added=added)
            refreshed = self.store.account(session, account.id)
            assert refreshed is not None
            return refreshed

        return await self.db.run(self.mutations.run, call, "LinkStudents", Account, work)

    async def unlink(self, call: Call, username: str, student_ids: Sequence[str]) -> Account:
        wanted = rules.clean_ids(student_ids)
        if not wanted:
            raise InvalidArgument("Give at least one student id to unlink.",
                                  [FieldViolation("student_ids", "required")], reason=sc.E_REQUIRED.code)

        def work(session: Session, audit: Audit) -> Account:
            account = account_or_404(self.store, session, username)
            removed = [s for s in wanted if s in account.student_ids]
            if removed:
                self.store.remove_links(session, account.id, removed)
                self.store.update_account(session, account.id, {"updated_at": audit.now})
                audit.record("account.unlink", account_target(account.username), removed=removed)
            refreshed = self.store.account(session, account.id)
            assert refreshed is not None
            return refreshed

        return await self.db.run(self.mutations.run, call, "UnlinkStudents", Account, work)

    # Batches of rows --------------------------------------------------------------------------------------------

    def plan(self, rows: Sequence[AccountRow], send_invitations: bool, links_only: bool = False) -> planning.Plan:
        return plan_batch(self.db, self.store, rows, send_invitations, links_only)

    async def apply_rows(self, call: Call, rows: Sequence[AccountRow], validate_only: bool, send_invitations: bool,
                         job_id: str, links_only: bool = False, elsewhere: Applier | None = None) -> BatchResult:
        check_batch_size(len(rows))
        if validate_only:
            plan = await self.db.run(self.plan, rows, send_invitations, links_only)
            return BatchResult(plan.results)
        stored = await self.db.run(self.mutations.replay, call, "BatchApplyAccountRows", BatchResult)
        if stored is not None:
            return stored.value
        # A worker process plans, prepares and writes the batch when it can (`elsewhere`), so that the service's
        # own core is not the limit of an upload; otherwise the batch is planned and its writes are built here,
        # before the write transaction, which checks that the plan still holds.
        now = self.clock()
        found = await elsewhere(now) if elsewhere is not None else None
        if isinstance(found, BatchResult):
            if any(r.invitation_queued for r in found.results):
                self.emails_queued()
            return found
        planned = found or await self.db.run(read_plan, self.db, self.store, rows, send_invitations, links_only)
        passwords = {r.row_number: r.password for r in rows if r.password}
        hashes: dict[int, str] = {}

        async def hash_rows(numbers: Sequence[int]) -> None:
            # Outside the write transaction, only the passwords a plan sets (a row with an error is never hashed).
            hashes.update(zip(numbers, await self.hashing.hash_many([passwords[n] for n in numbers]), strict=True))

        if planned.plan.password_rows:
            await hash_rows(sorted(planned.plan.password_rows))
        prepared = await self.db.run(prepare_batch, self.links, call, now, planned, hashes, job_id)
        for _attempt in range(3):
            try:
                result = await self.db.run(self.batches.apply, call, rows, send_invitations, job_id, hashes,
                                           links_only, prepared)
            except UsernameTaken:
                # Another writer created one of these usernames after the plan (PostgreSQL): plan again.
                continue
            except PasswordsToHash as needed:
                await hash_rows(needed.rows)  # the database changed since the plan (rare): then try again
                continue
            if any(r.invitation_queued for r in result.results):
                self.emails_queued()
            return result
        raise FailedPrecondition("Other changes to the same accounts kept arriving while this batch was applied: "
                                 "send it again.", reason="BATCH_CONFLICT")

    # Undo of an upload ------------------------------------------------------------------------------------------

    def _revert(self, session: Session, audit: Audit, created: Sequence[str],
                added_links: Sequence[tuple[str, Sequence[str]]]) -> RevertResult:
        accounts = self.store.accounts_by_usernames(session, [*created, *(name for name, _ in added_links)])
        removed, kept, doomed = [], [], []
        for name in dict.fromkeys(rules.username_key(u) for u in created):
            account = accounts.get(name)
            if account is None:
                continue  # already gone: nothing to undo
            if account.last_sign_in_at is not None:
                kept.append(KeptAccount(account.username, "the parent has signed in since the upload"))
            elif account.status == AccountStatus.ACTIVE:
                kept.append(KeptAccount(account.username, "the parent has set a password since the upload"))
            else:
                doomed.append(account)
        self.store.delete_accounts(session, [a.id for a in doomed])
        for account in doomed:
            removed.append(account.username)
            audit.record("account.delete", account_target(account.username), via="undo", username=account.username,
                         type=account.type.value, email=account.email, student_ids=list(account.student_ids))
        doomed_ids = {a.id for a in doomed}
        pairs: dict[tuple[str, str], Account] = {}
        for name, student_ids in added_links:
            account = accounts.get(rules.username_key(name))
            if account is not None and account.id not in doomed_ids:
                pairs.update({(account.id, s): account for s in rules.clean_ids(student_ids)
                              if s in account.student_ids})
        self.store.remove_link_pairs(session, list(pairs))
        unlinked: dict[str, list[str]] = {}
        for (_account_id, student_id), account in pairs.items():
            unlinked.setdefault(account.username, []).append(student_id)
        for username, student_ids in unlinked.items():
            audit.record("account.unlink", account_target(username), via="undo", removed=student_ids)
        return RevertResult(tuple(removed), len(pairs), tuple(kept))

    async def revert(self, call: Call, created: Sequence[str],
                     added_links: Sequence[tuple[str, Sequence[str]]]) -> RevertResult:
        """Undo what an upload did: delete the accounts it created that nobody has used yet, and remove the links
        it added; say which accounts stay, and why. Nothing else is touched."""
        return await self.db.run(self.mutations.run, call, "RevertAccountChanges", RevertResult,
                                 lambda session, audit: self._revert(session, audit, created, added_links))

