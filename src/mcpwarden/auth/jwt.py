"""JWT access-token validation (RFC 9068, RFC 8725, RFC 8707) for the OAuth resource server.

Signatures are checked by PyJWT with a key from the configured JWKS only. Around it, the checks
the library leaves to its caller or does loosely, each before the next costs more:

1. size (`MAX_TOKEN_BYTES`) before any decoding (THREATS D17);
2. shape: exactly three segments of canonical, unpadded base64url (a JWE's five are refused
   without decompressing anything, D13; a re-encoded signature, D4);
3. the header: `alg` in the configured list only (`none`, HS*, anything else refused, D1, D2);
   `jku`, `x5u`, `jwk`, `x5c` and `crit` refused, never followed (D10, D11); `typ` checked (D13);
4. the payload's nesting depth and claim count before it is parsed (D17);
5. the key: from the JWKS by `kid`, of the kind the algorithm needs (D2, D8, D19);
6. signature, `iss` exact, `aud` exact or an array holding the audience, `exp`/`nbf`/`iat` with at
   most 60 s leeway (PyJWT), then strict claim types: times are JSON numbers, not strings,
   booleans or infinities (D5).

Every failure raises `TokenError` with a short reason that is safe to show (no token content).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt
from jwt.exceptions import PyJWTError

from mcpwarden.auth.jwks import JwksCache, KeysUnavailable
from mcpwarden.config import OAuthSettings
from mcpwarden.exchange import Identity

logger = logging.getLogger(__name__)

MAX_TOKEN_BYTES = 8192
MAX_HEADER_BYTES = 1024
MAX_CLAIMS = 100
MAX_DEPTH = 8
FORBIDDEN_HEADER_PARAMETERS = ("jku", "x5u", "jwk", "x5c", "crit", "zip", "enc")
ACCEPTED_DEFAULT_TYPES = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")
_MAX_NUMERIC_DATE = 253402300799  # 9999-12-31T23:59:59Z


class TokenError(Exception):
    """The token is not acceptable; `str()` is a short reason that is safe to send and log."""


class JwtValidator:
    """Turns a bearer JWT into an Identity, or raises TokenError."""

    def __init__(
        self,
        settings: OAuthSettings,
        keys: JwksCache,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self._clock = clock
        self._algorithms = frozenset(settings.algorithms)
        self._required_typ = settings.required_typ.lower() if settings.required_typ else None

    async def validate(self, token: str) -> Identity:
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenError("token too large")
        segments = token.split(".")
        if len(segments) == 5:
            raise TokenError("encrypted tokens (JWE) are not accepted")
        if len(segments) != 3:
            raise TokenError("malformed token")
        if len(segments[0]) > MAX_HEADER_BYTES:
            raise TokenError("token header too large")
        header = _parse_object(_decode_segment(segments[0]), "header")
        algorithm = self._check_header(header)
        claims = _parse_object(_decode_segment(segments[1]), "claims")
        _decode_segment(segments[2])  # the signature must be present and canonical too
        if len(claims) > MAX_CLAIMS:
            raise TokenError("too many claims")

        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenError("malformed key id")
        try:
            key = await self.keys.key_for(kid, algorithm)
        except KeysUnavailable:
            raise TokenError("no trusted signing key for this token") from None

        now = self._clock()
        try:
            verified: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway,
                options={"require": list(self.settings.required_claims), "strict_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("token not yet valid") from None
        except jwt.InvalidAudienceError:
            raise TokenError("token not issued for this resource (audience)") from None
        except jwt.InvalidIssuerError:
            raise TokenError("token from an untrusted issuer") from None
        except jwt.MissingRequiredClaimError:
            raise TokenError("token lacks a required claim") from None
        except jwt.InvalidSignatureError:
            raise TokenError("bad signature") from None
        except (PyJWTError, ValueError, TypeError, OverflowError):
            raise TokenError("invalid token") from None
        self._check_claim_types(verified, now)
        return self._identity(verified)

    def _check_header(self, header: Mapping[str, Any]) -> str:
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            raise TokenError("signature algorithm not accepted")
        for name in FORBIDDEN_HEADER_PARAMETERS:
            if name in header:
                raise TokenError(f"header parameter '{name}' is not accepted")
        typ = header.get("typ")
        if typ is not None and not isinstance(typ, str):
            raise TokenError("malformed token type")
        if self._required_typ is not None:
            if typ is None or typ.lower() not in (self._required_typ, f"application/{self._required_typ}"):
                raise TokenError("wrong token type")
        elif typ is not None and typ.lower() not in ACCEPTED_DEFAULT_TYPES:
            raise TokenError("wrong token type")
        return algorithm

    def _check_claim_types(self, claims: Mapping[str, Any], now: float) -> None:
        for name in ("exp", "nbf", "iat"):
            if name in claims and not _is_numeric_date(claims[name]):
                raise TokenError(f"claim '{name}' is not a valid time")
        leeway = self.settings.leeway
        if "iat" in claims and claims["iat"] > now + leeway:
            raise TokenError("token not yet valid")
        if "exp" in claims and claims["exp"] <= now - leeway:
            raise TokenError("token expired")
        if "nbf" in claims and claims["nbf"] > now + leeway:
            raise TokenError("token not yet valid")
        audience = claims.get("aud")
        if isinstance(audience, list):
            if not all(isinstance(item, str) for item in audience):
                raise TokenError("token not issued for this resource (audience)")
            if len(audience) > 1:
                # Accepted (RFC 8707 allows several), but worth knowing: the token opens other doors too.
                logger.info(
                    "accepted a token whose audience also names %d other resource(s)", len(audience) - 1
                )
        elif not isinstance(audience, str):
            raise TokenError("token not issued for this resource (audience)")

    def _identity(self, claims: Mapping[str, Any]) -> Identity:
        settings = self.settings
        name = claims.get(settings.principal_claim)
        if not isinstance(name, str) or not name or len(name) > 256 or not name.isprintable():
            raise TokenError(f"claim '{settings.principal_claim}' does not name a principal")
        attributes = {
            key: claims[key]
            for key in ("iss", "sub", "client_id", "azp", "jti")
            if isinstance(claims.get(key), str)
        }
        return Identity(
            name=name,
            roles=_string_set(claims.get(settings.roles_claim), settings.roles_claim),
            scopes=_string_set(claims.get(settings.scopes_claim), settings.scopes_claim),
            method="jwt",
            attributes=attributes,
        )


def _decode_segment(segment: str) -> bytes:
    if not _SEGMENT.fullmatch(segment):
        raise TokenError("malformed token")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("malformed token") from None
    # Only the canonical encoding is accepted: trailing bits that decode to the same bytes are a
    # second spelling of one signature, which RFC 7515 §2 does not allow (THREATS D4).
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode() != segment:
        raise TokenError("malformed token")
    return data


def _parse_object(data: bytes, what: str) -> dict[str, Any]:
    if _nesting_depth(data) > MAX_DEPTH:
        raise TokenError(f"token {what} nested too deeply")
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise TokenError("malformed token") from None
    if not isinstance(value, dict):
        raise TokenError("malformed token")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _nesting_depth(data: bytes) -> int:
    """The deepest bracket nesting outside strings: checked before parsing, so no recursion blows up."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):  # { [
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                return deepest
        elif byte in (0x7D, 0x5D):
            depth -= 1
    return deepest


def _is_numeric_date(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and 0 <= value <= _MAX_NUMERIC_DATE


def _string_set(value: Any, claim: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    raise TokenError(f"claim '{claim}' must be a string or a list of strings")
