"""Every command module registers itself with bot.registry.REGISTRY when imported."""

from bot.commands import (
    account,
    codes,
    contacts,
    create,
    drift,
    edit,
    generate,
    help,
    invites,
    jobs,
    links,
    password,
    permissions,
    policy,
    reset,
    roster,
    template,
    upload,
    usage,
)

__all__ = ["account", "codes", "contacts", "create", "drift", "edit", "generate", "help", "invites", "jobs", "links",
           "password", "permissions", "policy", "reset", "roster", "template", "upload", "usage"]
