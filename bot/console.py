"""The chat console: the same commands typed in a terminal, a file path where Slack would carry an upload,
buttons as numbered choices, files written under <data dir>/outbox/, and the task alerts notify writes to
<data dir>/outbox/alerts.log printed as they arrive (like Hubot's shell adapter)."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import threading
import uuid
from pathlib import Path
from typing import Any, TextIO

from bot.commands.upload import local_file, local_request_id
from bot.core import Anchor, BotCore, Request
from bot.dispatch import run_action, run_command, submit_form
from bot.flows import run_trial
from bot.render_console import plain, render
from bot.replies import Button, Confirm, Form, FormField, Reply, Text
from plumbing.context import Actor

PROMPT = "portal> "
ALERT_POLL_SECONDS = 0.5
BANNER = ("Parent portal console. Type /portal help to see the commands, the path of a spreadsheet for a trial "
          "run, a number to choose a button, or quit. (The bot's log is in {log}.)")


def outbox_dir(core: BotCore) -> Path:
    path = core.settings.data_dir / "outbox"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_file(folder: Path, filename: str, data: bytes) -> Path:
    """Write under the outbox without overwriting an earlier file of the same name."""
    name = Path(filename).name or "file"
    target = folder / name
    stem, suffix = Path(name).stem, Path(name).suffix
    counter = 1
    while target.exists():
        target = folder / f"{stem}-{counter}{suffix}"
        counter += 1
    target.write_bytes(data)
    return target


class ConsoleSurface:
    name = "console"

    def __init__(self, console: Console) -> None:
        self.console = console

    async def reply(self, reply: Reply) -> None:
        self.console.show(reply)

    async def refuse(self, text: str) -> None:
        self.console.say(text)

    async def open_form(self, form: Form, metadata: dict[str, str]) -> None:
        await self.console.fill_form(form, metadata)

    async def start_progress(self, text: str, thread_ts: str = "") -> Anchor:
        self.console.say(text)
        return Anchor(channel="console", user_id=self.console.actor.id)

    async def update_progress(self, anchor: Anchor, text: str) -> None:
        self.console.say(text)


class Console:
    def __init__(self, core: BotCore, stdin: TextIO, stdout: TextIO, operator: str | None = None) -> None:
        self.core = core
        self.stdin = stdin
        self.stdout = stdout
        name = operator or _login_name()
        self.actor = Actor(f"console:{name}", name)
        self.surface = ConsoleSurface(self)
        self.choices: dict[int, Button] = {}
        self._next_choice = 1
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._session = uuid.uuid4().hex[:8]
        # The prompt waiting for a command, and whether no form (opened by a button) holds the keyboard.
        self._prompt: asyncio.Future[str | None] | None = None
        self._no_form = asyncio.Event()
        self._no_form.set()

    # Output ---------------------------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.stdout.write(plain(text) + "\n")
        self.stdout.flush()

    def show(self, reply: Reply) -> None:
        text, buttons = render(reply, self._next_choice)
        for button in buttons:
            self.choices[self._next_choice] = button
            self._next_choice += 1
        self.say(text)
        for file in reply.files:
            path = save_file(outbox_dir(self.core), file.filename, file.data)
            self.say(f"File saved: {path}")

    # Input ----------------------------------------------------------------------------------------------------

    def _start_reader(self) -> None:
        loop = asyncio.get_running_loop()

        def read() -> None:
            while True:
                try:
                    line = self.stdin.readline()
                except (OSError, ValueError):
                    line = ""
                loop.call_soon_threadsafe(self._lines.put_nowait, line if line else None)
                if not line:
                    return

        threading.Thread(target=read, name="console-stdin", daemon=True).start()

    async def ask(self, prompt: str) -> str | None:
        self.stdout.write(prompt)
        self.stdout.flush()
        line = await self._lines.get()
        return None if line is None else line.rstrip("\r\n")

    # The loop -------------------------------------------------------------------------------------------------

    def request(self, key: str = "") -> Request:
        return Request(self.actor, self.surface, channel="", key=key or uuid.uuid4().hex)

    async def run(self) -> int:
        self._start_reader()
        alerts = asyncio.create_task(self.follow_alerts(), name="console alerts")
        self.say(BANNER.format(log=self.core.settings.data_dir / "bot-console.log"))
        try:
            while not self.core.stopping.is_set():
                self._prompt = asyncio.ensure_future(self.ask(PROMPT))
                try:
                    line = await self._prompt
                except asyncio.CancelledError:
                    if self._no_form.is_set():
                        raise
                    await self._no_form.wait()  # a button's form took the keyboard; the prompt comes back after
                    continue
                if line is None or line.strip().lower() in ("quit", "exit", "/portal quit"):
                    break
                await self.handle(line.strip())
        finally:
            alerts.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await alerts
        self.say("bye")
        return 0

    async def handle(self, line: str) -> None:
        if not line:
            return
        if line.isdigit():
            await self.choose(int(line))
            return
        first_word = line.split()[0].lower()
        if line.startswith("/portal") or first_word in self.core.registry.commands:
            await run_command(self.core, self.request(), line)
            return
        path = Path(line.strip("'\"")).expanduser()
        if path.is_file():
            self.core.tasks.spawn(run_trial(self.core, self.request(), local_file(path), local_request_id(path)),
                                  name="trial run")
            return
        self.say(f"I did not understand {line!r}. Type /portal help, or the path of a spreadsheet.")

    async def choose(self, number: int) -> None:
        button = self.choices.get(number)
        if button is None:
            self.say(f"There is no choice {number}.")
            return
        if button.confirm is not None and not await self.confirm(button.confirm):
            self.say("Cancelled.")
            return
        request = self.request(key=f"{self._session}:{number}")
        self.core.tasks.spawn(run_action(self.core, request, button.action_id, button.value),
                              name=f"choice {button.action_id}")

    async def confirm(self, confirm: Confirm) -> bool:
        answer = await self.ask(f"{confirm.title} {confirm.text} [{confirm.confirm}: y / {confirm.deny}: n] ")
        return (answer or "").strip().lower() in ("y", "yes")

    # Forms ----------------------------------------------------------------------------------------------------

    async def fill_form(self, form: Form, metadata: dict[str, str] | None = None) -> None:
        if self._prompt is not None and not self._prompt.done():
            # Opened by a button while the prompt waits for a command: the form's questions take the keyboard.
            self._no_form.clear()
            self._prompt.cancel()
            self.say("")
        try:
            await self._fill(form, metadata)
        finally:
            self._no_form.set()

    async def _fill(self, form: Form, metadata: dict[str, str] | None) -> None:
        self.say(f"{form.title} (type !cancel to stop)")
        values: dict[str, str] = {}
        asking = list(form.fields)
        errors: dict[str, str] = {}
        key = uuid.uuid4().hex
        while True:
            for field in asking:
                answer = await self.ask_field(field, errors.get(field.name, ""))
                if answer is None:
                    self.say("Cancelled.")
                    return
                values[field.name] = answer
            request = self.request(key)
            request.metadata = dict(metadata or {})
            result = await submit_form(self.core, request, form.callback_id, values)
            if not result.errors:
                if result.reply is not None:
                    self.show(result.reply)
                return
            errors = result.errors
            asking = [field for field in form.fields if field.name in errors]

    async def ask_field(self, field: FormField, error: str) -> str | None:
        if error:
            self.say(f"  ! {field.label}: {error}")
        if field.hint and not error:
            self.say(f"  ({field.hint})")
        if field.kind == "select":
            options = "/".join(choice.value for choice in field.choices)
            answer = await self.ask(f"{field.label} ({options}) [{field.initial}]: ")
        elif field.kind == "checkbox" and len(field.choices) > 1:
            options = ", ".join(choice.value for choice in field.choices)
            answer = await self.ask(f"{field.label} (any of {options}, comma separated; - for none) "
                                    f"[{field.initial or '-'}]: ")
            if answer is not None and answer.strip() != "!cancel":
                chosen = field.initial if not answer.strip() else "" if answer.strip() == "-" else answer
                return ",".join(part.strip() for part in chosen.split(",") if part.strip())
        elif field.kind == "checkbox":
            label = field.choices[0].label if field.choices else field.label
            answer = await self.ask(f"{label}? [{'Y/n' if field.initial else 'y/N'}]: ")
            if answer is not None and answer.strip() != "!cancel":
                yes = answer.strip().lower() in ("y", "yes") or (not answer.strip() and bool(field.initial))
                return field.choices[0].value if yes and field.choices else ""
        else:
            now = f" [{field.initial}]" if field.initial else ""
            answer = await self.ask(f"{field.label}{' (optional)' if field.optional else ''}{now}: ")
        if answer is None or answer.strip() == "!cancel":
            return None
        return answer.strip() or field.initial

    # Alerts from notify ---------------------------------------------------------------------------------------

    async def follow_alerts(self) -> None:
        """Print what notify writes to outbox/alerts.log while no Slack is configured, from now on."""
        path = outbox_dir(self.core) / "alerts.log"
        offset = path.stat().st_size if path.exists() else 0
        pending = b""
        while True:
            if path.exists():
                size = path.stat().st_size
                if size < offset:
                    offset = 0
                if size > offset:
                    with path.open("rb") as handle:
                        handle.seek(offset)
                        pending += handle.read(size - offset)
                    offset = size
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if line.strip():
                            self.show_alert(line.decode("utf-8", "replace"))
            await asyncio.sleep(ALERT_POLL_SECONDS)

    def show_alert(self, line: str) -> None:
        try:
            alert = json.loads(line)
        except ValueError:
            self.say(f"[alert] {line}")
            return
        if not isinstance(alert, dict):
            self.say(f"[alert] {line}")
            return
        self.show(alert_reply(alert))


def alert_reply(alert: dict[str, Any]) -> Reply:
    """A task alert as notify wrote it (text, Block Kit blocks, files) as a console reply."""
    blocks = alert.get("blocks")
    if blocks is None and alert.get("blocks_json"):
        with contextlib.suppress(ValueError):
            blocks = json.loads(alert["blocks_json"])
    parts: list[Any] = []
    buttons: list[Button] = []
    for block in blocks or ():
        if block.get("type") == "section":
            if block.get("text"):
                parts.append(Text(str(block["text"].get("text", ""))))
            for field in block.get("fields") or ():
                parts.append(Text(str(field.get("text", ""))))
        elif block.get("type") == "context":
            parts += [Text(str(e.get("text", ""))) for e in block.get("elements") or () if e.get("text")]
        elif block.get("type") == "actions":
            buttons += [_button(e) for e in block.get("elements") or () if e.get("type") == "button"]
    files = alert.get("files") or []
    for file in files:
        where = file.get("path") or file.get("filename") if isinstance(file, dict) else str(file)
        parts.append(Text(f"File: {where}"))
    text = str(alert.get("text", ""))
    if parts and isinstance(parts[0], Text) and parts[0].text == text:
        parts = parts[1:]
    return Reply(f"[alert] {text}", parts=parts, buttons=buttons)


def _button(element: dict[str, Any]) -> Button:
    confirm = element.get("confirm")
    return Button(
        label=str((element.get("text") or {}).get("text", element.get("action_id", ""))),
        action_id=str(element.get("action_id", "")), value=str(element.get("value", "")),
        style=element.get("style"),
        confirm=Confirm(str((confirm.get("title") or {}).get("text", "Are you sure?")),
                        str((confirm.get("text") or {}).get("text", "")),
                        str((confirm.get("confirm") or {}).get("text", "Yes")),
                        str((confirm.get("deny") or {}).get("text", "Cancel"))) if confirm else None,
    )


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "operator"
