"""Wires account care (policies, permissions, contact drift, staff clashes, contact cards, the logons export) into
the accounts service: what service.py's setup calls, so the setup stays a list of capabilities."""

from __future__ import annotations

from collections.abc import Callable

from plumbing.server import Runtime
from services.accounts.clashes import StaffClashes
from services.accounts.contact_cards import ContactCards
from services.accounts.domain import Clock
from services.accounts.drift import ContactDrift, DriftSettings
from services.accounts.logons import LogonsExport
from services.accounts.mutations import Mutations
from services.accounts.permissions import Permissions
from services.accounts.policies import Policies
from services.accounts.servicer_care import AccountCare
from services.accounts.store import AccountStore


def wire_care(runtime: Runtime, store: AccountStore, mutations: Mutations, clock: Clock,
              emails_queued: Callable[[], None]) -> AccountCare:
    settings, db = runtime.settings, runtime.db
    drift_settings = DriftSettings(settings.contact_changes, settings.username_scheme, settings.school_name,
                                   settings.zone)
    return AccountCare(
        policies=Policies(db, store, mutations),
        permissions=Permissions(db, store, mutations),
        drift=ContactDrift(db, store, mutations, drift_settings, clock, emails_queued),
        cards=ContactCards(db),
        clashes=StaffClashes(db),
        logons=LogonsExport(db, store, settings.zone, clock),
    )
