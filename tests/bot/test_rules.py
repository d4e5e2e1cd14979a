"""The bot's pure rules: parsing, selectors, rendering, download checks, error sentences, access and places."""

from __future__ import annotations

import grpc
import pytest

from bot.access import OTHER_CHANNEL, PUBLIC_FILE, Place, command_place_allowed, file_place_problem, private_place
from bot.commands.create import CREATE_FORM, errors_from
from bot.files import allowed_host, looks_like_html
from bot.registry import UsageError, loaded_registry, split_command
from bot.render_console import plain, render, table_text
from bot.render_slack import blocks_for, modal_for, modal_values
from bot.replies import Button, Confirm, Fields, Reply, Table
from bot.selectors import parse_selector
from bot.services import ServiceProblem, friendly
from plumbing.errors import FieldViolation
from tests.support.services import make_settings


def settings(tmp_path, **overrides):
    return make_settings(tmp_path, f"sqlite:///{tmp_path / 'p.db'}", **overrides)


def rpc_error(code: grpc.StatusCode, details: str = "") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@pytest.mark.parametrize(("text", "expected"), [
    ("/portal account jsmith01", ("account", ["jsmith01"])),
    ("account  jsmith01 ", ("account", ["jsmith01"])),
    ("", ("help", [])),
    ("/portal", ("help", [])),
    ("TEMPLATE group \"7 Blue\"", ("template", ["group", "7 Blue"])),
    ("link a 'unclosed", ("link", ["a", "'unclosed"])),
])
def test_split_command(text, expected) -> None:
    assert split_command(text) == expected


def test_selectors() -> None:
    usage = "/portal template ..."
    assert parse_selector(["all"], usage)[0].all
    assert parse_selector(["grad", "2031"], usage)[0].grad_year == 2031
    assert parse_selector(["group", "7", "Blue"], usage)[0].group == "7 Blue"
    assert parse_selector(["lastname", "Sm"], usage)[0].last_name_prefix == "Sm"
    assert parse_selector(["school", "North", "High"], usage)[0].school == "North High"
    for bad in ([], ["grad", "soon"], ["group"], ["all", "x"], ["everyone"]):
        with pytest.raises(UsageError):
            parse_selector(bad, usage)


def test_every_command_has_a_summary_and_examples_that_parse_to_itself() -> None:
    registry = loaded_registry()
    for command in registry.commands.values():
        assert command.summary and command.examples, command.name
        for example in command.examples:
            assert split_command(example)[0] == command.name
    assert {"help", "codes", "jobs", "template", "account", "create", "link", "unlink", "delete", "undo"} <= set(
        registry.visible("slack")[i].name for i in range(len(registry.visible("slack"))))
    assert "imports_upload" in registry.actions and "imports_undo" in registry.actions


def test_friendly_sentences() -> None:
    down = friendly("accounts", rpc_error(grpc.StatusCode.UNAVAILABLE, "connect failed"))
    assert down.message == "The accounts service is not answering, try again in a minute." and down.down
    late = friendly("imports", rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED))
    assert late.message == "The imports service is not answering, try again in a minute."
    said = friendly("accounts", rpc_error(grpc.StatusCode.NOT_FOUND, "No account jsmith01."))
    assert said.message == "No account jsmith01."
    assert "older version" in friendly("imports", rpc_error(grpc.StatusCode.UNIMPLEMENTED)).message
    assert "PORTAL_SERVICE_TOKEN" in friendly("notify", rpc_error(grpc.StatusCode.UNAUTHENTICATED)).message


def test_field_violations_land_on_the_form_fields() -> None:
    problem = ServiceProblem("accounts", "bad", grpc.StatusCode.INVALID_ARGUMENT, [
        FieldViolation("account.username", "At least 6 characters."),
        FieldViolation("password", "Too weak."), FieldViolation("account.student_ids[0]", "Unknown student."),
        FieldViolation("mystery", "Odd.")])
    errors = errors_from(problem)
    assert errors == {"username": "At least 6 characters. Odd.", "password": "Too weak.",
                      "students": "Unknown student."}
    taken = errors_from(ServiceProblem("accounts", "Taken.", grpc.StatusCode.ALREADY_EXISTS))
    assert taken == {"username": "Taken."}


def test_modal_round_trip() -> None:
    view = modal_for(CREATE_FORM, {"channel": "G1"})
    assert view["type"] == "modal" and len(view["title"]["text"]) <= 24
    names = [block["block_id"] for block in view["blocks"]]
    assert names == [field.name for field in CREATE_FORM.fields]
    state = {"values": {
        "username": {"username": {"type": "plain_text_input", "value": "jsmith01"}},
        "type": {"type": {"type": "static_select", "selected_option": {"value": "staff"}}},
        "invite": {"invite": {"type": "checkboxes", "selected_options": [{"value": "invite"}]}},
        "password": {"password": {"type": "plain_text_input", "value": None}},
    }}
    assert modal_values({**view, "state": state}) == {"username": "jsmith01", "type": "staff", "invite": "invite",
                                                      "password": ""}


def test_slack_blocks_and_console_text_come_from_one_reply() -> None:
    reply = Reply("Account *jsmith01*", parts=[Fields((("Students", "100234, 100235"),)),
                                               Table(("code", "fix"), (("E_X", "Fix it"),))],
                  buttons=[Button("Delete", "account_delete", "jsmith01", "danger", Confirm("Sure?", "Really."))])
    blocks = blocks_for(reply)
    assert blocks[-1]["type"] == "actions"
    element = blocks[-1]["elements"][0]
    assert element["action_id"] == "account_delete" and element["confirm"]["text"]["text"] == "Really."
    assert any("100234, 100235" in field["text"] for block in blocks for field in block.get("fields", []))
    text, buttons = render(reply, first_number=4)
    assert "Account jsmith01" in text and "[4] Delete" in text and buttons[0].action_id == "account_delete"
    assert "E_X   Fix it" in table_text(Table(("code", "fix"), (("E_X", "Fix it"),)))
    assert plain(":warning: *bold* `code` _it_") == "! bold code it"


def test_download_checks(tmp_path) -> None:
    configured = settings(tmp_path, SLACK_API_URL="http://127.0.0.1:9999/api/")
    assert allowed_host("https://files.slack.com/files-pri/T1-F1/download/a.xlsx", configured)
    assert not allowed_host("http://files.slack.com/files-pri/T1-F1/a.xlsx", configured)
    assert allowed_host("http://127.0.0.1:9999/files-pri/T1-F1/a.xlsx", configured)
    assert not allowed_host("http://127.0.0.1:9998/files-pri/T1-F1/a.xlsx", configured)
    assert not allowed_host("https://evil.example.org/a.xlsx", configured)
    assert looks_like_html(b"\n  <!DOCTYPE html><html>")
    assert looks_like_html(b"\xef\xbb\xbf<html lang='en'>")
    assert not looks_like_html(b"PK\x03\x04")
    assert not looks_like_html(b"LOGONID,EMAIL\n")


def test_places(tmp_path) -> None:
    anywhere = settings(tmp_path)
    assert file_place_problem(anywhere, Place("C1", "channel")) == PUBLIC_FILE
    assert file_place_problem(anywhere, Place("G1", "group")) is None
    assert file_place_problem(anywhere, Place("D1", "im")) is None
    assert command_place_allowed(anywhere, Place("C1"))
    listed = settings(tmp_path, channels="C1,G2")
    assert file_place_problem(listed, Place("C1", "channel")) is None
    assert file_place_problem(listed, Place("G3", "group")) == OTHER_CHANNEL
    assert file_place_problem(listed, Place("D9", "im")) is None
    assert not command_place_allowed(listed, Place("C7"))
    assert command_place_allowed(listed, Place("D7", "im"))
    assert private_place(listed, Place("C1")) and not private_place(anywhere, Place("C1"))
