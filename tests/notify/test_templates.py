"""Email templates: every template renders a text and an HTML part, HTML is escaped, branding comes from settings."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

import pytest

from plumbing.config import SchoolSender, Settings
from services.notify.rules import TEMPLATES
from services.notify.templates import (
    Branding,
    TemplateDataError,
    branding_for,
    build_message,
    format_when,
    new_message_id,
    render,
    sample_data,
)

BRANDING = Branding("Lincoln High", "Lincoln High <office@lincoln.example.org>", "https://portal.example.org",
                    ZoneInfo("Europe/London"))
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
UTC_ZONE = ZoneInfo("UTC")


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_has_a_subject_a_text_and_an_html_part(template) -> None:
    rendered = render(template, sample_data(template, BRANDING, NOW), BRANDING)
    assert rendered.subject and "\n" not in rendered.subject
    assert rendered.text.strip() and "<" not in rendered.text.replace("<Jo>", "")
    assert rendered.html.lstrip().startswith("<!DOCTYPE html>") and "</html>" in rendered.html
    assert "Lincoln High" in rendered.html
    if template != "notice":
        assert "Lincoln High" in rendered.subject and "Lincoln High" in rendered.text


def test_the_invitation_has_the_username_the_link_and_its_expiry_but_never_a_password() -> None:
    data = {"first_name": "Jo", "username": "jsmith42", "password": "Leaked-Passw0rd",
            "link": "https://portal.example.org/set-password?token=abc123", "expire_time": "2026-11-26T17:00:00Z"}
    rendered = render("invitation", data, BRANDING)
    assert rendered.subject == "Your Lincoln High parent portal account"
    for part in (rendered.text, rendered.html):
        assert "jsmith42" in part
        assert "https://portal.example.org/set-password?token=abc123" in part
        assert "Thursday 26 November 2026 at 17:00 GMT" in part
        assert "Leaked-Passw0rd" not in part and "assword:" not in part


def test_html_is_escaped_and_text_is_not() -> None:
    data = {"first_name": "<script>alert(1)</script>", "username": "a&b",
            "link": "https://p.example/set-password?token=t&x=\"y\""}
    rendered = render("invitation", data, BRANDING)
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert 'href="https://p.example/set-password?token=t&amp;x=&#34;y&#34;"' in rendered.html
    assert "Hello <script>alert(1)</script>," in rendered.text


def test_login_details_carry_the_password_and_the_sign_in_address() -> None:
    rendered = render("login_details", {"username": "jsmith42", "password": "N3w-Passw0rd"}, BRANDING)
    assert "Password: N3w-Passw0rd" in rendered.text and "N3w-Passw0rd" in rendered.html
    assert "Sign in at https://portal.example.org" in rendered.text


def test_the_password_reset_and_two_factor_emails() -> None:
    reset = render("password_reset", {"username": "jsmith42", "link": "https://p.example/set-password?token=r"},
                   BRANDING)
    assert reset.subject == "Reset your Lincoln High parent portal password"
    assert "https://p.example/set-password?token=r" in reset.text and "This link works once." in reset.text
    two_factor = render("two_factor_enabled", {"username": "jsmith42", "contact": "office@lincoln.example.org"},
                        BRANDING)
    assert "authenticator app" in two_factor.text and "(office@lincoln.example.org)" in two_factor.html


def test_a_notice_keeps_its_paragraphs_and_cannot_inject_headers_or_html() -> None:
    rendered = render("notice", {"subject": "Closed\r\nBcc: everyone@example.org",
                                 "body": "Dear parents,\n\nSchool is <b>closed</b>.\nSee you soon."}, BRANDING)
    assert rendered.subject == "Closed Bcc: everyone@example.org"
    assert "<p>Dear parents,</p>" in rendered.html
    assert "<p>School is &lt;b&gt;closed&lt;/b&gt;.<br>\nSee you soon.</p>" in rendered.html
    assert "School is <b>closed</b>.\nSee you soon." in rendered.text


def test_missing_or_unsafe_data_is_refused() -> None:
    with pytest.raises(TemplateDataError, match="missing template data: link"):
        render("invitation", {"username": "u"}, BRANDING)
    with pytest.raises(TemplateDataError, match="not an http"):
        render("password_reset", {"link": "javascript:alert(1)"}, BRANDING)
    with pytest.raises(TemplateDataError, match="unknown template"):
        render("newsletter", {}, BRANDING)


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-07-01T08:30:00+00:00", "Wednesday 1 July 2026 at 09:30 BST"),
    ("2026-01-05T08:30:00Z", "Monday 5 January 2026 at 08:30 GMT"),
    ("2026-01-05T08:30:00", "Monday 5 January 2026 at 08:30 GMT"),
    (1767601800, "Monday 5 January 2026 at 08:30 GMT"),
    ("in three days", "in three days"),
    (None, ""),
])
def test_expiry_times_are_shown_in_the_school_time_zone(value, expected) -> None:
    assert format_when(value, ZoneInfo("Europe/London")) == expected


def test_school_overrides_replace_the_name_and_sender() -> None:
    settings = Settings(school_name="Springfield District", mail_from="District <noreply@district.example.org>",
                        school_senders={"Lincoln High": SchoolSender(name="Lincoln High School",
                                                                     mail_from="Lincoln <office@lhs.example.org>"),
                                        "Roosevelt": SchoolSender(name="Roosevelt Elementary")})
    assert branding_for(settings).school_name == "Springfield District"
    lincoln = branding_for(settings, "lincoln high")
    assert (lincoln.school_name, lincoln.mail_from) == ("Lincoln High School", "Lincoln <office@lhs.example.org>")
    roosevelt = branding_for(settings, "Roosevelt")
    assert (roosevelt.school_name, roosevelt.sender_address) == ("Roosevelt Elementary", "noreply@district.example.org")
    assert branding_for(settings, "Unknown School").school_name == "Springfield District"
    rendered = render("two_factor_enabled", {}, lincoln)
    assert "Lincoln High School" in rendered.subject
    # The caller's data may name the school too (it wins).
    assert "Other Name" in render("two_factor_enabled", {"school_name": "Other Name"}, lincoln).subject


def test_the_message_is_multipart_alternative_with_all_the_headers() -> None:
    rendered = render("invitation", sample_data("invitation", BRANDING, NOW), BRANDING)
    message_id = new_message_id(BRANDING)
    assert message_id.endswith("@lincoln.example.org>")
    raw = build_message(rendered, BRANDING, "parent@example.org", message_id, NOW)
    assert raw.isascii() and b"\r\n\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["From"] == "Lincoln High <office@lincoln.example.org>"
    assert message["To"] == "parent@example.org"
    assert message["Subject"] == rendered.subject
    assert message["Message-ID"] == message_id
    assert parsedate_to_datetime(message["Date"]) == NOW
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/alternative" and not message.defects
    text, html = message.iter_parts()
    assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert _lf(text.get_content()) == rendered.text and _lf(html.get_content()) == rendered.html


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n")


def test_names_and_subjects_beyond_ascii_are_encoded_and_read_back() -> None:
    branding = Branding("Lycée Élan", "Lycée Élan <secrétariat@lycee.example.org>", "https://p.example", UTC_ZONE)
    rendered = render("notice", {"subject": "Fermeture exceptionnelle — neige ❄", "body": "Chère famille,\n\n"
                                 "L\u2019école est fermée.\n.\nA line with a lone dot, and = signs = 3D."}, branding)
    raw = build_message(rendered, branding, "zoë@bücher.example", "<m1@lycee.example.org>", NOW)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["From"].addresses[0].display_name == "Lycée Élan"
    assert message["Subject"] == "Fermeture exceptionnelle — neige ❄"
    assert message["To"] == "zoë@bücher.example"
    text, html = message.iter_parts()
    assert _lf(text.get_content()) == rendered.text and "L\u2019école est fermée." in html.get_content()


def test_school_senders_come_from_one_json_variable_and_a_bad_one_is_named(monkeypatch, tmp_path) -> None:
    from plumbing.config import ConfigError, load_settings

    monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PORTAL_SCHOOL_SENDERS",
                       '{"LHS": {"name": "Lincoln High", "mail_from": "LHS <o@lhs.example.org>"}}')
    assert branding_for(load_settings(), "lhs").mail_from == "LHS <o@lhs.example.org>"
    for bad, named in (("{not json", "expected JSON"), ('{"LHS": {"mail_from": "nowhere"}}', "expected an address"),
                       ('{"LHS": {"colour": "red"}}', "PORTAL_SCHOOL_SENDERS")):
        monkeypatch.setenv("PORTAL_SCHOOL_SENDERS", bad)
        with pytest.raises(ConfigError) as error:
            load_settings()
        assert str(error.value).startswith("PORTAL_SCHOOL_SENDERS") and named in str(error.value)
        assert "\n" not in str(error.value)
