"""Staff clashes (the CONNECT seed's scenario): a staff member whose parent record carries the same email as their
staff account. Usernames and emails are unique across the district, so the parent side is either an account with
that email made before the staff account, or a roster contact with parental responsibility that generation skips
(S_STAFF_EMAIL) or gave another username. Every such pair is listed with both usernames and schools, so staff can
ask for the personal email the seed recommends, or rename one of the accounts."""

from __future__ import annotations

from dataclasses import dataclass

from plumbing.db import Database
from services.accounts import contact_store, paging, policy_store
from services.accounts.domain import Page


@dataclass(frozen=True)
class StaffClash:
    email: str
    staff_username: str
    staff_schools: tuple[str, ...]
    parent_username: str
    parent_schools: tuple[str, ...]
    parent_contact_id: str = ""
    parent_name: str = ""


def _sorted(names: set[str]) -> tuple[str, ...]:
    return tuple(sorted((n for n in names if n), key=str.lower))


class StaffClashes:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _all(self) -> list[StaffClash]:
        with self.db.read() as session:
            staff = contact_store.staff_accounts(session)
            keys = {key for account in staff for key in account.keys}
            guardians = contact_store.guardians_by_emails(session, keys)
            contacts = {c.id: c for c in contact_store.contacts_by_emails(session, keys).values()}
            responsible = contact_store.responsible_contacts(session, contacts)
            made = contact_store.guardians_of_contacts(session, responsible)
            schools = policy_store.account_schools(session, [a.id for a in staff] + [g[0] for g in guardians]
                                                   + [account_id for account_id, _ in made.values()])
        by_key_guardians: dict[str, list[tuple[str, str, str, str]]] = {}
        for guardian in guardians:
            by_key_guardians.setdefault(guardian[2], []).append(guardian)
        by_key_contacts: dict[str, list[str]] = {}
        for contact_id in responsible:
            by_key_contacts.setdefault(contacts[contact_id].email.strip().lower(), []).append(contact_id)
        found: list[StaffClash] = []
        for account in staff:
            mine = _sorted(schools.get(account.id, set()))
            for key in account.keys:
                listed: set[str] = set()
                for account_id, username, _key, contact_id in by_key_guardians.get(key, ()):
                    listed.add(account_id)
                    contact = contacts.get(contact_id)
                    found.append(StaffClash(key, account.username, mine, username,
                                            _sorted(schools.get(account_id, set())), contact_id,
                                            contact.name if contact else ""))
                for contact_id in sorted(by_key_contacts.get(key, ())):
                    parent_id, parent_username = made.get(contact_id, ("", ""))
                    if parent_id in listed:
                        continue
                    parent_schools = schools.get(parent_id, set()) if parent_id else responsible[contact_id]
                    found.append(StaffClash(key, account.username, mine, parent_username, _sorted(parent_schools),
                                            contact_id, contacts[contact_id].name))
        return sorted(found, key=lambda c: (c.email, c.staff_username.lower(), c.parent_username.lower(),
                                            c.parent_contact_id))

    def _page(self, size: int, token: str) -> Page[StaffClash]:
        kind = paging.list_kind("clashes", ())
        position = paging.decode(kind, token)
        start = int(position[0]) if position else 0
        every = self._all()
        items = every[start:start + size]
        more = start + size < len(every)
        return Page(tuple(items), paging.encode(kind, start + size) if more else "", len(every))

    async def list(self, page_size: int, page_token: str) -> Page[StaffClash]:
        return await self.db.run(self._page, paging.page_size(page_size), page_token)
