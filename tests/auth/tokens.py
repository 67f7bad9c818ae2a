"""Test keys, a JWKS, and the THREATS.md section D token vectors, all made here (no network).

`Issuer` signs tokens with keys generated in the test run. `bad_tokens()` lists every attack row
as (id, token) pairs; the unit tests feed them to the validator and the end-to-end tests send
them to a real gateway, so both layers are held to the same list.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://as.example"
OTHER_AUDIENCE = "https://other.example/mcp"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return jwk


def sign_rs256(
    key: rsa.RSAPrivateKey, header: Mapping[str, Any] | bytes, payload: Mapping[str, Any] | bytes
) -> str:
    header_bytes = header if isinstance(header, bytes) else json.dumps(header).encode()
    payload_bytes = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64(header_bytes)}.{b64(payload_bytes)}".encode()
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{b64(signature)}"


@dataclass
class Issuer:
    """The trusted authorization server of the tests: key `k1`, issuer `ISSUER`."""

    audience: str
    key: rsa.RSAPrivateKey = field(default_factory=new_rsa_key)
    kid: str = "k1"
    attacker_key: rsa.RSAPrivateKey = field(default_factory=new_rsa_key)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(self.key, self.kid)]}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": "alice",
            "aud": self.audience,
            "iat": now,
            "exp": now + 600,
            "scope": "mcp:tools-basic",
            "client_id": "client-1",
            "roles": ["dev"],
        }
        for name, value in overrides.items():
            if value is _DROP:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def token(self, header: Mapping[str, Any] | None = None, **claims: Any) -> str:
        return sign_rs256(
            self.key,
            {"alg": "RS256", "typ": "at+jwt", "kid": self.kid, **(header or {})},
            self.claims(**claims),
        )

    def bad_tokens(self, attacker_url: str) -> list[tuple[str, str]]:
        """Every THREATS D vector that must get 401 `invalid_token` (D14, D17, D19 are tested apart)."""
        now = int(time.time())
        good = self.token()
        h, p, s = good.split(".")
        public_pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        attacker_jwk = public_jwk(self.attacker_key, "k1")
        hs_header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
        hs_input = f"{hs_header}.{p}".encode()
        hs_token = f"{hs_header}.{p}.{b64(hmac.new(public_pem, hs_input, hashlib.sha256).digest())}"
        flipped_payload = json.dumps(self.claims(sub="mallory")).encode()
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        # Same decoded bytes, other spelling: flip an unused low bit of the last character.
        non_canonical = s[:-1] + alphabet[alphabet.index(s[-1]) ^ 1]
        payload_raw = json.dumps(self.claims()).encode()

        def raw_exp(text: str) -> str:
            body = payload_raw.replace(
                b'"exp": ' + str(self.claims()["exp"]).encode(), b'"exp": ' + text.encode()
            )
            assert body != payload_raw
            return sign_rs256(self.key, {"alg": "RS256", "typ": "at+jwt", "kid": "k1"}, body)

        def header(**extra: Any) -> str:
            return self.token(header=extra)

        jwe_header = b64(
            json.dumps({"alg": "RSA-OAEP", "enc": "A256GCM", "zip": "DEF", "kid": "k1"}).encode()
        )
        return [
            ("D1-alg-none", f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{p}."),
            ("D1-alg-None-signed", sign_rs256(self.key, {"alg": "None", "kid": "k1"}, self.claims())),
            ("D2-hs256-with-public-key", hs_token),
            ("D4-flipped-payload", f"{h}.{b64(flipped_payload)}.{s}"),
            ("D4-stripped-signature", f"{h}.{p}."),
            ("D4-no-signature-segment", f"{h}.{p}"),
            ("D4-non-canonical-base64", f"{h}.{p}.{non_canonical}"),
            ("D4-padded-base64", f"{h}.{p}.{s}=="),
            ("D5-expired", self.token(exp=now - 3600)),
            ("D5-no-exp", self.token(exp=_DROP)),
            ("D5-exp-string", raw_exp('"9999999999"')),
            ("D5-exp-1e309", raw_exp("1e309")),
            ("D5-exp-bool", raw_exp("true")),
            ("D6-nbf-future", self.token(nbf=now + 3600)),
            ("D6-iat-future", self.token(iat=now + 86400)),
            ("D7-wrong-audience", self.token(aud=OTHER_AUDIENCE)),
            ("D7-wrong-audience-array", self.token(aud=["https://other.example"])),
            ("D7-no-audience", self.token(aud=_DROP)),
            ("D8-wrong-issuer", self.token(iss="https://evil.example")),
            (
                "D8-other-issuers-key",
                sign_rs256(self.attacker_key, {"alg": "RS256", "kid": "k1"}, self.claims()),
            ),
            ("D8-unknown-kid", sign_rs256(self.attacker_key, {"alg": "RS256", "kid": "evil"}, self.claims())),
            ("D10-jku", header(jku=f"{attacker_url}/jwks.json")),
            ("D10-jku-metadata-ip", header(jku="http://169.254.169.254/")),
            ("D10-x5u", header(x5u=f"{attacker_url}/cert.pem")),
            (
                "D11-embedded-jwk",
                sign_rs256(
                    self.attacker_key, {"alg": "RS256", "kid": "k1", "jwk": attacker_jwk}, self.claims()
                ),
            ),
            (
                "D11-self-signed-x5c",
                sign_rs256(
                    self.attacker_key, {"alg": "RS256", "x5c": [b64(b"not-a-real-cert")]}, self.claims()
                ),
            ),
            ("D13-id-token", self.token(header={"typ": "JWT"}, aud="client-1", nonce="n-0S6_WzA2Mj")),
            ("D13-refresh-token-opaque", "tGzv3JOkF0XG5Qx2TlKWIA"),
            (
                "D13-jwe-zip-bomb",
                f"{jwe_header}.{b64(b'k' * 256)}.{b64(b'iv' * 6)}.{b64(b'x' * 2048)}.{b64(b't' * 16)}",
            ),
            ("D13-wrong-typ", self.token(header={"typ": "dpop+jwt"})),
            ("D15-other-resource", self.token(aud="https://server-a.example/mcp")),
            (
                "D17-deep-claim",
                sign_rs256(self.key, {"alg": "RS256", "kid": "k1"}, _deep_payload(self.claims(), 40)),
            ),
            ("D17-crit-header", header(crit=["exp"])),
            ("not-a-jwt", "definitely not a token"),
            ("api-key-shaped-unknown", "mcpw_0123456789abcdef_" + "A" * 43),
        ]


class _Drop:
    pass


_DROP: Any = _Drop()
DROP = _DROP


def _deep_payload(claims: dict[str, Any], depth: int) -> bytes:
    nested = b"[" * depth + b"1" + b"]" * depth
    body = json.dumps(claims).encode()
    return body[:-1] + b', "deep": ' + nested + b"}"
