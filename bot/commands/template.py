"""`/portal template SELECTOR`: the upload template prefilled with the selected students, as a workbook."""

from __future__ import annotations

from bot.core import BotCore, Request
from bot.registry import REGISTRY
from bot.replies import OutFile, Reply
from bot.selectors import SELECTOR_WORDS, parse_selector
from bot.services import calling
from portal.imports.v1 import imports_pb2

USAGE = f"/portal template {SELECTOR_WORDS}"


@REGISTRY.command("template", SELECTOR_WORDS,
                  "The upload template, one row per selected student: fill in the parent columns and drop it back.",
                  ("/portal template grad 2031", "/portal template group 7B", "/portal template lastname Sm",
                   "/portal template all"))
async def template(core: BotCore, request: Request, args: list[str]) -> Reply:
    selector, described = parse_selector(args, USAGE)
    filename, data = "parent-accounts-template.xlsx", bytearray()
    async with calling("imports", request.actor, seconds=120):
        async for chunk in core.services.imports.GetTemplate(imports_pb2.GetTemplateRequest(selector=selector)):
            if chunk.filename:
                filename = chunk.filename
            data += chunk.data
    return Reply(f"Upload template for {described}: fill in the parent columns, then drop it back here for a "
                 "trial run. Rows left empty mean no account for that student.",
                 files=[OutFile(filename, bytes(data), f"Template ({described})")])
