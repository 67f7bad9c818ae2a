"""JWT validation against every THREATS.md section D vector, with keys made in the test."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from mcpwarden.auth.jwks import JwksCache, parse_jwks
from mcpwarden.auth.jwt import MAX_TOKEN_BYTES, JwtValidator, TokenError
from mcpwarden.config import OAuthSettings
from tests.auth.tokens import DROP, ISSUER, Issuer, public_jwk, sign_rs256

pytestmark = pytest.mark.anyio
AUDIENCE = "https://gw.example/mcp"


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer(audience=AUDIENCE)


def settings_for(jwks_file: Path, **overrides: Any) -> OAuthSettings:
    return OAuthSettings(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks_file=str(jwks_file),
        required_claims=("exp", "iat", "iss", "aud", "sub", "scope"),
        **overrides,
    )


@pytest.fixture
def validator(issuer: Issuer, tmp_path: Path) -> JwtValidator:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(issuer.jwks()))
    settings = settings_for(path)
    return JwtValidator(settings, JwksCache(settings))


async def test_a_good_token_maps_claims_to_an_identity(issuer: Issuer, validator: JwtValidator) -> None:
    identity = await validator.validate(issuer.token(scope="mcp:tools-basic tools:write"))
    assert identity.name == "alice"
    assert identity.method == "jwt"
    assert identity.roles == frozenset({"dev"})
    assert identity.scopes == frozenset({"mcp:tools-basic", "tools:write"})
    assert identity.attributes["iss"] == ISSUER and identity.attributes["client_id"] == "client-1"


async def test_an_audience_array_holding_the_gateway_is_accepted(
    issuer: Issuer, validator: JwtValidator
) -> None:
    identity = await validator.validate(issuer.token(aud=["https://other.example", AUDIENCE]))
    assert identity.name == "alice"


async def test_expiry_within_the_leeway_is_accepted_and_beyond_it_refused(
    issuer: Issuer, validator: JwtValidator
) -> None:
    now = int(time.time())
    assert (await validator.validate(issuer.token(exp=now - 10))).name == "alice"  # leeway 30 s
    with pytest.raises(TokenError, match="expired"):
        await validator.validate(issuer.token(exp=now - 45))


def test_leeway_is_capped_at_60_seconds(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="leeway"):
        settings_for(tmp_path / "jwks.json", leeway=3600)


def test_symmetric_and_none_algorithms_cannot_be_configured(tmp_path: Path) -> None:
    for algorithm in ("HS256", "none"):
        with pytest.raises(ValueError, match="unsupported algorithm"):
            settings_for(tmp_path / "jwks.json", algorithms=(algorithm,))


async def test_every_d_row_vector_is_refused(issuer: Issuer, validator: JwtValidator) -> None:
    refused: dict[str, str] = {}
    for name, token in issuer.bad_tokens("http://127.0.0.1:9"):
        with pytest.raises(TokenError) as caught:
            await validator.validate(token)
        refused[name] = str(caught.value)
        # The reason is safe to show: it never carries the token or any part of it.
        assert token not in refused[name] and token.split(".")[0] not in refused[name]
    assert refused["D1-alg-none"] == "signature algorithm not accepted"
    assert refused["D2-hs256-with-public-key"] == "signature algorithm not accepted"
    assert refused["D4-flipped-payload"] == "bad signature"
    assert refused["D4-non-canonical-base64"] == "malformed token"
    assert refused["D5-exp-string"] == "claim 'exp' is not a valid time"
    assert refused["D7-wrong-audience"] == "token not issued for this resource (audience)"
    assert refused["D8-wrong-issuer"] == "token from an untrusted issuer"
    assert refused["D10-jku"] == "header parameter 'jku' is not accepted"
    assert refused["D11-embedded-jwk"] == "header parameter 'jwk' is not accepted"
    assert refused["D13-jwe-zip-bomb"] == "encrypted tokens (JWE) are not accepted"
    assert refused["D17-deep-claim"] == "token claims nested too deeply"


async def test_required_typ_refuses_plain_jwts(issuer: Issuer, tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(issuer.jwks()))
    settings = settings_for(path, required_typ="at+jwt")
    validator = JwtValidator(settings, JwksCache(settings))
    assert (await validator.validate(issuer.token())).name == "alice"
    assert (await validator.validate(issuer.token(header={"typ": "application/at+jwt"}))).name == "alice"
    for typ in ("JWT", None):
        header: dict[str, Any] = (
            {"alg": "RS256", "kid": "k1"} if typ is None else {"alg": "RS256", "kid": "k1", "typ": typ}
        )
        with pytest.raises(TokenError, match="wrong token type"):
            await validator.validate(sign_rs256(issuer.key, header, issuer.claims()))


async def test_missing_required_scope_claim_is_refused(issuer: Issuer, validator: JwtValidator) -> None:
    with pytest.raises(TokenError, match="required claim"):
        await validator.validate(issuer.token(scope=DROP))


async def test_size_and_claim_count_are_checked_before_any_parsing(
    issuer: Issuer, validator: JwtValidator
) -> None:
    with pytest.raises(TokenError, match="too large"):
        await validator.validate("a" * (MAX_TOKEN_BYTES + 1))
    many = {f"c{i}": 1 for i in range(150)}
    with pytest.raises(TokenError, match="too many claims"):
        await validator.validate(issuer.token(**many))


async def test_principal_claim_mapping_is_configurable(issuer: Issuer, tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(issuer.jwks()))
    settings = settings_for(path, principal_claim="email", roles_claim="groups", scopes_claim="scp")
    validator = JwtValidator(settings, JwksCache(settings))
    identity = await validator.validate(
        issuer.token(email="alice@example.com", groups="ops sre", scp=["a:read", "b:write"])
    )
    assert identity.name == "alice@example.com"
    assert identity.roles == frozenset({"ops", "sre"})
    assert identity.scopes == frozenset({"a:read", "b:write"})
    with pytest.raises(TokenError, match="does not name a principal"):
        await validator.validate(issuer.token(email=DROP))


# -- the key cache (THREATS D19) -----------------------------------------------------------------


class FakeSource:
    """A JWKS endpoint under the test's control, with a clock the test moves."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document: dict[str, Any] | None = document
        self.fetches = 0
        self.now = 1000.0

    async def fetch(self) -> bytes:
        self.fetches += 1
        if self.document is None:
            raise OSError("connection refused")
        return json.dumps(self.document).encode()


def cache_with(source: FakeSource, **overrides: Any) -> tuple[JwksCache, OAuthSettings]:
    settings = OAuthSettings(
        issuer=ISSUER, audience=AUDIENCE, jwks_uri="https://as.example/jwks.json", **overrides
    )
    return JwksCache(settings, fetcher=source.fetch, clock=lambda: source.now), settings


async def test_keys_are_cached_until_the_ttl(issuer: Issuer) -> None:
    source = FakeSource(issuer.jwks())
    cache, settings = cache_with(source, jwks_ttl=60)
    validator = JwtValidator(settings, cache)
    for _ in range(5):
        await validator.validate(issuer.token())
    assert source.fetches == 1
    source.now += 61
    await validator.validate(issuer.token())
    assert source.fetches == 2


async def test_removed_key_is_refused_after_the_ttl(issuer: Issuer) -> None:
    source = FakeSource(issuer.jwks())
    cache, settings = cache_with(source, jwks_ttl=60)
    validator = JwtValidator(settings, cache)
    await validator.validate(issuer.token())
    source.document = {"keys": [public_jwk(issuer.attacker_key, "k2")]}  # k1 rotated out
    source.now += 30
    await validator.validate(issuer.token())  # still cached: within the TTL
    source.now += 31
    with pytest.raises(TokenError, match="no trusted signing key"):
        await validator.validate(issuer.token())


async def test_unreachable_jwks_fails_closed_past_the_ttl(issuer: Issuer) -> None:
    source = FakeSource(issuer.jwks())
    cache, settings = cache_with(source, jwks_ttl=60)
    validator = JwtValidator(settings, cache)
    await validator.validate(issuer.token())
    source.document = None  # 500, timeout, connection refused: all the same to the cache
    source.now += 59
    await validator.validate(issuer.token())
    source.now += 2
    with pytest.raises(TokenError, match="no trusted signing key"):
        await validator.validate(issuer.token())
    source.document = issuer.jwks()  # recovers as soon as the source does
    source.now += 1
    assert (await validator.validate(issuer.token())).name == "alice"


async def test_an_outage_costs_one_fetch_per_second_not_one_per_request(issuer: Issuer) -> None:
    source = FakeSource(issuer.jwks())
    cache, settings = cache_with(source, jwks_ttl=60)
    validator = JwtValidator(settings, cache)
    await validator.validate(issuer.token())
    source.document = None
    source.now += 61
    for _ in range(100):
        with pytest.raises(TokenError, match="no trusted signing key"):
            await validator.validate(issuer.token())
    assert source.fetches == 2
    source.now += 1.5
    with pytest.raises(TokenError):
        await validator.validate(issuer.token())
    assert source.fetches == 3


async def test_unknown_kids_refresh_at_most_once_per_interval(issuer: Issuer) -> None:
    source = FakeSource(issuer.jwks())
    cache, settings = cache_with(source, jwks_ttl=600, jwks_refresh_interval=30)
    validator = JwtValidator(settings, cache)
    await validator.validate(issuer.token())
    source.now += 31
    for index in range(50):
        token = sign_rs256(issuer.attacker_key, {"alg": "RS256", "kid": f"made-up-{index}"}, issuer.claims())
        with pytest.raises(TokenError):
            await validator.validate(token)
    assert source.fetches == 2  # the first load, then one refresh for the whole flood
    # A key that really was rotated in is picked up by the next allowed refresh.
    source.document = {"keys": [*issuer.jwks()["keys"], public_jwk(issuer.attacker_key, "k2")]}
    source.now += 31
    rotated = sign_rs256(issuer.attacker_key, {"alg": "RS256", "kid": "k2"}, issuer.claims())
    assert (await validator.validate(rotated)).name == "alice"


def test_jwks_parsing_skips_symmetric_private_and_encryption_keys(issuer: Issuer) -> None:
    good = public_jwk(issuer.key, "k1")
    private = {**good, "kid": "priv", "d": "AAAA"}
    document = {
        "keys": [
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {**good, "kid": "enc", "use": "enc"},
            private,
            {**good, "kid": "ops", "key_ops": ["encrypt"]},
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            good,
        ]
    }
    assert [key.kid for key in parse_jwks(json.dumps(document).encode())] == ["k1"]


def test_jwks_uri_must_be_https_unless_loopback() -> None:
    for uri in ("http://as.example/jwks.json", "file:///etc/passwd", "http://169.254.169.254/"):
        with pytest.raises(ValueError, match="https"):
            OAuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks_uri=uri)
    OAuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks_uri="http://127.0.0.1:9/jwks.json")


def test_overbroad_tool_scopes_are_refused_in_config() -> None:
    for scope in ("*", "all", "full-access", "a b"):
        with pytest.raises(ValueError, match="scope"):
            OAuthSettings(issuer=ISSUER, audience=AUDIENCE, jwks_file="x", tool_scopes={"notes__*": scope})


async def test_a_jwks_endpoint_that_never_answers_times_out_and_fails_closed(issuer: Issuer) -> None:
    import socket

    import anyio

    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        settings = OAuthSettings(
            issuer=ISSUER, audience=AUDIENCE, jwks_uri=f"http://127.0.0.1:{port}/jwks.json", jwks_timeout=0.3
        )
        validator = JwtValidator(settings, JwksCache(settings))
        with anyio.fail_after(5):
            with pytest.raises(TokenError, match="no trusted signing key"):
                await validator.validate(issuer.token())
