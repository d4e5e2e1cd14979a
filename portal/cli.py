"""The `portal` command: `up`, `serve SERVICE`, `bot`, `migrate`, `makemigration`."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import logging
import sys

from plumbing.config import ConfigError, Settings, load_settings
from plumbing.logs import setup_logging

SERVICE_MODULES = {
    "accounts": "services.accounts.service",
    "imports": "services.imports.service",
    "notify": "services.notify.service",
}
# Every owner of tables: the three services and the bot (its record of handled events and files).
SCHEMA_OWNERS = (*SERVICE_MODULES, "bot")


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        print(f"portal: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _bot_available() -> bool:
    return importlib.util.find_spec("bot.app") is not None


def cmd_up(args: argparse.Namespace) -> int:
    from plumbing.supervisor import run_up

    settings = _settings()
    setup_logging("up", settings.log_level, settings.log_format)
    with_bot = not args.no_bot and _bot_available()
    return asyncio.run(run_up(settings, with_bot=with_bot))


def cmd_serve(args: argparse.Namespace) -> int:
    from plumbing.server import run_service

    settings = _settings()
    setup_logging(args.service, settings.log_level, settings.log_format)
    spec = importlib.import_module(SERVICE_MODULES[args.service]).SPEC
    try:
        settings.listen_address(args.service)
    except ConfigError as exc:
        print(f"portal: configuration error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(run_service(spec, settings))
    return 0


def cmd_bot(_args: argparse.Namespace) -> int:
    settings = _settings()
    setup_logging("bot", settings.log_level, settings.log_format)
    bot_app = importlib.import_module("bot.app")
    return int(asyncio.run(bot_app.run_bot(settings)) or 0)


def cmd_migrate(args: argparse.Namespace) -> int:
    from plumbing import migrations
    from plumbing.db import Database

    settings = _settings()
    setup_logging("migrate", settings.log_level, settings.log_format)
    unknown = sorted(set(args.services) - set(SCHEMA_OWNERS))
    if unknown:
        print(f"portal: unknown schema owner {', '.join(unknown)}; choose from {', '.join(SCHEMA_OWNERS)}",
              file=sys.stderr)
        return 2
    for service in args.services or list(SCHEMA_OWNERS):
        db = Database(settings.resolved_database_url, service, pool_size=1)
        try:
            migrations.upgrade(db, service)
            logging.getLogger("portal.migrate").info("%s schema at head (%s)", service,
                                                     migrations.head_revision(service))
        finally:
            db.dispose()
    return 0


def cmd_makemigration(args: argparse.Namespace) -> int:
    from plumbing import migrations
    from plumbing.db import Database

    settings = _settings()
    setup_logging("migrate", settings.log_level, "text")
    db = Database(settings.resolved_database_url, args.service, pool_size=1)
    try:
        migrations.make_revision(args.service, db, args.message)
    finally:
        db.dispose()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portal", description="Parent-portal accounts for schools, from Slack.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="migrate and run everything on this machine (what `make run` does)")
    up.add_argument("--no-bot", action="store_true", help="run only the three services")
    up.set_defaults(func=cmd_up)
    serve = commands.add_parser("serve", help="run one service")
    serve.add_argument("service", choices=sorted(SERVICE_MODULES))
    serve.set_defaults(func=cmd_serve)
    bot = commands.add_parser("bot", help="run the Slack bot (or the chat console without Slack tokens)")
    bot.set_defaults(func=cmd_bot)
    migrate = commands.add_parser("migrate", help="bring the database schema to head, then exit")
    migrate.add_argument("services", nargs="*", metavar="SERVICE", help="default: all (accounts, imports, notify, bot)")
    migrate.set_defaults(func=cmd_migrate)
    make = commands.add_parser("makemigration", help="(developers) autogenerate a migration for a service")
    make.add_argument("service", choices=sorted(SCHEMA_OWNERS))
    make.add_argument("-m", "--message", required=True)
    make.set_defaults(func=cmd_makemigration)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
