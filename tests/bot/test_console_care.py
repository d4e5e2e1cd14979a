"""Account care in the chat console: the edit form asks each field with its current value, which an empty answer
keeps; the permissions form takes a comma-separated choice."""

from __future__ import annotations

from pathlib import Path

from portal.accounts.v1 import accounts_pb2 as A
from tests.bot.terminal import Terminal
from tests.bot.test_console import ROOT, console_env
from tests.support.services import make_settings, running_service


async def test_the_console_edits_an_account_keeping_what_is_not_retyped(tmp_path: Path, sqlite_url: str) -> None:
    from bot.services import Services

    settings = make_settings(tmp_path / "data", sqlite_url)
    async with running_service("accounts", settings):
        services = Services(settings)
        await services.accounts.BatchUpsertRoster(A.BatchUpsertRosterRequest(students=[
            A.Student(id="N1", first_name="Sam", last_name="Smith", school="North High")]), timeout=30)
        await services.accounts.CreateAccount(A.CreateAccountRequest(account=A.Account(
            username="parent01", first_name="Pat", last_name="Smith", email="pat@example.org", student_ids=["N1"]),
            password="Correct1Horse"), timeout=30)
        async with Terminal(console_env(settings), ROOT, tmp_path / "bot.log") as console:
            await console.expect("portal> ")
            console.type("/portal edit parent01")
            for prompt, answer in (("First name [Pat]: ", ""), ("Surname [Smith]: ", "Jones"),
                                   ("Email (optional) [pat@example.org]: ", ""), ("Username [parent01]: ", ""),
                                   ("[guardian]: ", ""), ("[enabled]: ", "")):
                await console.expect(prompt, timeout=60)
                console.type(answer)
            assert "parent01 saved." in await console.expect("portal> ", timeout=60)
            console.type("/portal account parent01")
            shown = await console.expect("portal> ", timeout=60)
            number = next(line.split("]")[0].strip(" [") for line in shown.splitlines()
                          if "Permissions: N1" in line)
            console.type(number)
            await console.expect("[grades,attendance,reports,messages]: ", timeout=60)
            console.type("grades, reports")
            assert "parent01 may now see of N1: grades, reports." in await console.expect("portal> ", timeout=60)
            console.type("quit")
            await console.expect("bye")
        account = await services.accounts.GetAccount(A.GetAccountRequest(username_or_email="parent01"), timeout=30)
        await services.close()
    assert (account.first_name, account.last_name, account.email) == ("Pat", "Jones", "pat@example.org")
    assert [list(link.permissions) for link in account.links] == [["grades", "reports"]]
