"""Every command module registers itself with bot.registry.REGISTRY when imported."""

from bot.commands import account, codes, create, help, jobs, links, template, upload

__all__ = ["account", "codes", "create", "help", "jobs", "links", "template", "upload"]
