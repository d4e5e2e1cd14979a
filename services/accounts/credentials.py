"""Secrets other than passwords: set-password tokens, TOTP codes and recovery codes.

Only digests of tokens and recovery codes are stored (SHA-256: they are long random strings, so a fast hash is
enough). A call that carries a request_id derives its secrets from the service's secret key and that id (HMAC), so
a retried call answers with the same secrets without any of them being stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

import pyotp

from services.accounts.domain import TokenPurpose

TOKEN_LIFETIMES = {TokenPurpose.INVITATION: timedelta(days=7), TokenPurpose.RESET: timedelta(hours=1)}
RECOVERY_CODE_COUNT = 10
TOTP_DIGITS = 6
# Codes of the previous and next 30-second step are accepted too (clock drift on phones).
TOTP_DRIFT_STEPS = 1
_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def _hmac(key: str, *parts: str) -> bytes:
    return hmac.new(key.encode(), "\x1f".join(parts).encode(), hashlib.sha256).digest()


def new_token(key: str = "", *parts: str) -> str:
    """A URL-safe set-password token: random, or derived from `key` and `parts` (a request id) when given."""
    raw = _hmac(key, "set-password", *parts) if parts else secrets.token_bytes(32)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_totp_secret(key: str = "", *parts: str) -> str:
    raw = _hmac(key, "totp", *parts)[:20] if parts else secrets.token_bytes(20)
    return base64.b32encode(raw).decode()


def otpauth_uri(secret: str, username: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def totp_code(secret: str, when: datetime) -> str:
    return pyotp.TOTP(secret).at(when)


def matching_totp_step(secret: str, code: str, now: datetime, last_step: int) -> int | None:
    """The time step `code` belongs to (within the allowed drift), if it is later than the last one used."""
    code = "".join(code.split())
    if len(code) != TOTP_DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        if step > last_step and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes(key: str = "", *parts: str) -> tuple[str, ...]:
    """Ten one-time codes like 'k7qm2-x9tbe' (about 50 bits each)."""
    codes = []
    for index in range(RECOVERY_CODE_COUNT):
        raw = _hmac(key, "recovery", *parts, str(index)) if parts else secrets.token_bytes(32)
        chars = "".join(_CODE_ALPHABET[b % len(_CODE_ALPHABET)] for b in raw[:10])
        codes.append(f"{chars[:5]}-{chars[5:]}")
    return tuple(codes)


def recovery_digest(code: str) -> str:
    """Digest of a recovery code as typed (any case, with or without the hyphen and spaces)."""
    return digest("".join(ch for ch in code.lower() if ch.isalnum()))


def looks_like_recovery_code(code: str) -> bool:
    cleaned = "".join(ch for ch in code.lower() if ch.isalnum())
    return len(cleaned) == 10 and all(ch in _CODE_ALPHABET for ch in cleaned)
