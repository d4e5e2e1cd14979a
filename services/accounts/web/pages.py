"""The page handlers: read the form, call the self-service operations (the same ones the gRPC servicer uses), pick
the page or the redirect. Every POST has passed the CSRF check (see server.py) before it gets here."""

from __future__ import annotations

import math
from urllib.parse import urlencode

from aiohttp import web

from plumbing.errors import ServiceError
from services.accounts import rules
from services.accounts.domain import AuthOutcome, TokenState, TwoFactor
from services.accounts.self_service import (
    CHANGE_PASSWORD,
    CODE,
    ENROL,
    SIGNED_IN,
    SelfService,
    WebSession,
    parent_call,
)
from services.accounts.setpassword import SetPasswordLinks
from services.accounts.web.rendering import PageError, Renderer, qr_svg
from services.accounts.web.security import SESSION_COOKIE, client_address

STAGE_PAGES = {CODE: "/login/code", CHANGE_PASSWORD: "/change-password", ENROL: "/two-factor",
               SIGNED_IN: "/account"}
LINK_PROBLEMS = {
    TokenState.EXPIRED: ("This link has expired", "Links to set a password work for a limited time. We can email "
                         "you a new one."),
    TokenState.USED: ("This link has been used", "Each link works once. If you have set your password, sign in "
                      "with it; if not, we can email you a new link."),
    TokenState.REVOKED: ("This link was replaced", "A newer link was sent, or your password was set since. Use the "
                         "link in the latest email, or we can email you a new one."),
    TokenState.UNKNOWN: ("This link is not valid", "Check that the whole link was copied from the email, or ask "
                         "for a new one."),
}
SAME_ANSWER = ("If that matches an account with an email address, a link to set a new password is on its way. It "
               "may take a few minutes; check your spam folder too. The link works once, for one hour.")


def _form_text(form: object, name: str) -> str:
    value = form.get(name, "") if hasattr(form, "get") else ""  # type: ignore[union-attr]
    return value if isinstance(value, str) else ""


def _see_other(path: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(path)


def _mismatch(password: str, confirm: str, username: str) -> list[PageError]:
    if not password:
        return [PageError("Type a new password.", "password")]
    if password != confirm:
        return [PageError("The two passwords are not the same: type them again.", "confirm")]
    return [PageError(p.message, "password") for p in rules.check_password(password, username)]


def _service_errors(exc: ServiceError, field: str) -> list[PageError]:
    return [PageError(v.description if len(exc.violations) > 1 else exc.message, field)
            for v in exc.violations] or [PageError(exc.message, field)]


class Pages:
    def __init__(self, service: SelfService, links: SetPasswordLinks, renderer: Renderer, proxy_hops: int) -> None:
        self.service = service
        self.links = links
        self.render = renderer
        self.proxy_hops = proxy_hops

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.home), web.get("/healthz", self.health),
            web.get("/set-password", self.set_password_form), web.post("/set-password", self.set_password),
            web.post("/set-password/new-link", self.new_link),
            web.get("/login", self.login_form), web.post("/login", self.login),
            web.get("/login/code", self.code_form), web.post("/login/code", self.code),
            web.get("/change-password", self.change_form), web.post("/change-password", self.change),
            web.get("/two-factor", self.two_factor_form), web.post("/two-factor", self.two_factor),
            web.get("/account", self.account), web.post("/logout", self.logout),
            web.get("/forgot-password", self.forgot_form), web.post("/forgot-password", self.forgot),
        ]

    # Sessions ---------------------------------------------------------------------------------------------------

    async def _session(self, request: web.Request) -> WebSession | None:
        return await self.service.session(self.render.cookies.get(request, SESSION_COOKIE, "session"))

    async def _at(self, request: web.Request, *stages: str) -> WebSession:
        """The session, when it is at one of these stages; otherwise off to where it belongs (or to sign in)."""
        found = await self._session(request)
        if found is None:
            raise _see_other("/login")
        if found.stage not in stages:
            raise _see_other(STAGE_PAGES[found.stage])
        return found

    def _signed_in(self, session_id: str, stage: str) -> web.HTTPSeeOther:
        response = _see_other(STAGE_PAGES[stage])
        self.render.cookies.set(response, SESSION_COOKIE, session_id, "session")
        return response

    # Pages ------------------------------------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def home(self, request: web.Request) -> web.StreamResponse:
        found = await self._session(request)
        raise _see_other(STAGE_PAGES[found.stage] if found else "/login")

    async def set_password_form(self, request: web.Request) -> web.Response:
        token = request.query.get("token", "")
        inspection = await self.links.inspect(token)
        if inspection.state != TokenState.VALID:
            return self._link_problem(request, inspection.state, token)
        return self.render.page(request, "set_password.html.j2", "Choose your password", token=token,
                                username=inspection.username)

    def _link_problem(self, request: web.Request, state: TokenState, token: str) -> web.Response:
        title, reason = LINK_PROBLEMS[state]
        return self.render.page(request, "link_problem.html.j2", title, reason=reason, token=token,
                                can_renew=state != TokenState.UNKNOWN, status=410 if state != TokenState.UNKNOWN
                                else 404)

    async def set_password(self, request: web.Request) -> web.Response:
        form = await request.post()
        token, password = _form_text(form, "token"), _form_text(form, "password")
        inspection = await self.links.inspect(token)
        if inspection.state != TokenState.VALID:
            return self._link_problem(request, inspection.state, token)
        errors = _mismatch(password, _form_text(form, "confirm"), inspection.username)
        if not errors:
            try:
                account = await self.links.redeem(parent_call(inspection.username), token, password)
            except ServiceError as exc:
                if exc.reason.startswith("TOKEN_"):
                    return self._link_problem(request, TokenState[exc.reason.removeprefix("TOKEN_")], token)
                errors = _service_errors(exc, "password")
            else:
                return self.render.message(
                    request, "Your password is set",
                    f"You can now sign in as {account.username} with your new password.",
                    link=("/login?" + urlencode({"username": account.username}), "Sign in"))
        return self.render.page(request, "set_password.html.j2", "Choose your password", token=token,
                                username=inspection.username, errors=errors, status=400)

    async def new_link(self, request: web.Request) -> web.Response:
        self.service.new_link(_form_text(await request.post(), "token"))
        return self.render.message(request, "Check your email",
                                   "If that link was ours, a new one is on its way to the email address on the "
                                   "account. It may take a few minutes.", link=("/login", "Sign in"))

    async def login_form(self, request: web.Request) -> web.Response:
        found = await self._session(request)
        if found is not None and found.stage != CODE:
            raise _see_other(STAGE_PAGES[found.stage])
        notice = "You are signed out." if "signed_out" in request.query else ""
        return self.render.page(request, "login.html.j2", "Sign in", notice=notice,
                                username=request.query.get("username", "")[:150])

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        username, password = _form_text(form, "username").strip(), _form_text(form, "password")
        errors = []
        if not username:
            errors.append(PageError("Type your username.", "username"))
        if not password:
            errors.append(PageError("Type your password.", "password"))
        if not errors:
            step = await self.service.sign_in(username, password, client_address(request, self.proxy_hops))
            if step.session_id:
                # A new session id at every sign-in; an earlier one in this browser ends.
                await self.service.end(self.render.cookies.get(request, SESSION_COOKIE, "session"))
                raise self._signed_in(step.session_id, step.stage)
            errors = [self._refusal(step.result.outcome, step.result.retry_after_seconds)]
        return self.render.page(request, "login.html.j2", "Sign in", errors=errors, username=username, status=400)

    @staticmethod
    def _refusal(outcome: AuthOutcome, retry_after: int) -> PageError:
        if outcome == AuthOutcome.THROTTLED:
            minutes = max(1, math.ceil(retry_after / 60))
            return PageError(f"Too many attempts. Wait {minutes} minute{'s' if minutes != 1 else ''} and try "
                             "again, or ask for a new password.")
        if outcome == AuthOutcome.DISABLED:
            return PageError("This account is disabled. Please contact the school office.")
        if outcome == AuthOutcome.TOTP_INVALID:
            return PageError("That code is not right: type the code your authenticator app shows now.", "code")
        return PageError("The username or password is not right.", "username")

    async def code_form(self, request: web.Request) -> web.Response:
        found = await self._at(request, CODE)
        return self.render.page(request, "code.html.j2", "Enter your code", username=found.username)

    async def code(self, request: web.Request) -> web.Response:
        found = await self._at(request, CODE)
        code = _form_text(await request.post(), "code").strip()
        if not code:
            errors = [PageError("Type the code from your authenticator app.", "code")]
        else:
            step = await self.service.second_step(found, code, client_address(request, self.proxy_hops))
            if step.result.outcome == AuthOutcome.OK:
                raise _see_other(STAGE_PAGES[step.stage])
            error = self._refusal(step.result.outcome, step.result.retry_after_seconds)
            if step.result.outcome == AuthOutcome.THROTTLED:
                response = self.render.page(request, "login.html.j2", "Sign in", errors=[error], username="",
                                            status=429)
                self.render.cookies.clear(response, SESSION_COOKIE)
                return response
            errors = [error]
        return self.render.page(request, "code.html.j2", "Enter your code", username=found.username, errors=errors,
                                status=400)

    async def change_form(self, request: web.Request) -> web.Response:
        found = await self._at(request, CHANGE_PASSWORD, SIGNED_IN)
        return self.render.page(request, "change_password.html.j2", "Choose a new password",
                                username=found.username, required=found.stage == CHANGE_PASSWORD)

    async def change(self, request: web.Request) -> web.Response:
        found = await self._at(request, CHANGE_PASSWORD, SIGNED_IN)
        form = await request.post()
        password = _form_text(form, "password")
        errors = _mismatch(password, _form_text(form, "confirm"), found.username)
        if not errors:
            try:
                stage = await self.service.change_password(found, password)
            except ServiceError as exc:
                errors = _service_errors(exc, "password")
            else:
                raise _see_other(STAGE_PAGES[stage] + ("?changed=1" if stage == SIGNED_IN else ""))
        return self.render.page(request, "change_password.html.j2", "Choose a new password", errors=errors,
                                username=found.username, required=found.stage == CHANGE_PASSWORD, status=400)

    async def _two_factor_page(self, request: web.Request, found: WebSession, errors: list[PageError],
                               status: int = 200) -> web.Response:
        enrolment = await self.service.enrol(found)
        secret = enrolment.otpauth_uri.split("secret=", 1)[1].split("&", 1)[0]
        return self.render.page(request, "two_factor.html.j2", "Set up two-factor sign-in", errors=errors,
                                status=status, required=found.stage == ENROL, qr_svg=qr_svg(enrolment.otpauth_uri),
                                secret=secret, recovery_codes=enrolment.recovery_codes)

    async def two_factor_form(self, request: web.Request) -> web.Response:
        found = await self._at(request, ENROL, SIGNED_IN)
        if found.two_factor == TwoFactor.ENROLLED:
            await self.service.advance(found, SIGNED_IN)
            raise _see_other("/account")
        return await self._two_factor_page(request, found, [])

    async def two_factor(self, request: web.Request) -> web.Response:
        found = await self._at(request, ENROL, SIGNED_IN)
        code = _form_text(await request.post(), "code").strip()
        if not code:
            return await self._two_factor_page(request, found, [PageError("Type the 6-digit code.", "code")], 400)
        try:
            await self.service.confirm(found, code)
        except ServiceError as exc:
            return await self._two_factor_page(request, found, [PageError(exc.message, "code")], 400)
        raise _see_other("/account?two_factor=on")

    async def account(self, request: web.Request) -> web.Response:
        found = await self._at(request, SIGNED_IN)
        notice = ("Your password is changed." if "changed" in request.query else
                  "Two-factor sign-in is on." if "two_factor" in request.query else "")
        return self.render.page(request, "account.html.j2", "Your account", notice=notice, username=found.username,
                                enrolled=found.two_factor == TwoFactor.ENROLLED)

    async def logout(self, request: web.Request) -> web.Response:
        await self.service.end(self.render.cookies.get(request, SESSION_COOKIE, "session"))
        response = _see_other("/login?signed_out=1")
        self.render.cookies.clear(response, SESSION_COOKIE)
        raise response

    async def forgot_form(self, request: web.Request) -> web.Response:
        return self.render.page(request, "forgot.html.j2", "Forgotten your password?")

    async def forgot(self, request: web.Request) -> web.Response:
        value = _form_text(await request.post(), "username_or_email").strip()
        if not value:
            return self.render.page(request, "forgot.html.j2", "Forgotten your password?", status=400,
                                    errors=[PageError("Type your username or email address.", "username_or_email")])
        self.service.forgot(value[:254])
        return self.render.message(request, "Check your email", SAME_ANSWER, link=("/login", "Back to sign in"))
