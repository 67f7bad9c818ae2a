"""The issuer's signing keys (JWKS), from the configured `jwks_uri` or `jwks_file` and nowhere else.

Keys are cached for `jwks_ttl` seconds. A token naming an unknown `kid` may prompt one refresh, at
most once per `jwks_refresh_interval` (a flood of made-up kids costs one fetch per interval, not
one per request). When the source cannot be read past the TTL, the cache is emptied and every
token is refused (fail closed, THREATS D19): a removed or rotated key stops working within the TTL.

Never consulted: URLs or keys from a token's header (`jku`, `x5u`, `jwk`, `x5c`; THREATS D10, D11),
or anything discovered from a token's `iss` (D8). Fetches follow no redirects and read at most
`MAX_JWKS_BYTES`. Symmetric keys (`kty: oct`) are ignored: the gateway has no shared secret with
any issuer, which also rules out HS/RS confusion (D2).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from jwt import PyJWK
from jwt.exceptions import PyJWKError, PyJWTError

from mcpwarden.config import OAuthSettings

logger = logging.getLogger(__name__)

MAX_JWKS_BYTES = 256 * 1024
MAX_KEYS = 100
_OUTAGE_RETRY = 1.0  # seconds between two attempts while the source is failing

# Which key type (and curve) each accepted algorithm needs: a key is only ever used with its own kind.
KEY_KIND_BY_ALGORITHM: Mapping[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),
}

Fetcher = Callable[[], Awaitable[bytes]]


class KeysUnavailable(Exception):
    """No usable key: the source is unreachable past the TTL, or names no such key."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str | None
    kty: str
    crv: str | None
    alg: str | None  # the JWK's own `alg`, when it pins one
    key: Any  # a cryptography public key object

    def fits(self, algorithm: str) -> bool:
        kind = KEY_KIND_BY_ALGORITHM.get(algorithm)
        if kind is None or (self.kty, self.crv if kind[1] else None) != kind:
            return False
        return self.alg is None or self.alg == algorithm


class JwksCache:
    """Signing keys of one issuer, refreshed on TTL expiry and (boundedly) on an unknown kid."""

    def __init__(
        self,
        settings: OAuthSettings,
        *,
        fetcher: Fetcher | None = None,
        clock: Callable[[], float] = time.monotonic,
        base_dir: Path | None = None,
    ) -> None:
        self.ttl = settings.jwks_ttl
        self.refresh_interval = settings.jwks_refresh_interval
        self._clock = clock
        self._lock = anyio.Lock()
        self._keys: tuple[SigningKey, ...] = ()
        self._fetched_at: float | None = None  # when keys were last read successfully
        self._attempted_at: float | None = None  # when a read was last tried
        self.fetches = 0
        if fetcher is not None:
            self._fetch = fetcher
        elif settings.jwks_file is not None:
            path = Path(settings.jwks_file)
            self._fetch = _file_fetcher(path if path.is_absolute() or base_dir is None else base_dir / path)
        else:
            assert settings.jwks_uri is not None  # the settings validate one source
            self._fetch = _url_fetcher(settings.jwks_uri, settings.jwks_timeout)

    async def key_for(self, kid: str | None, algorithm: str) -> SigningKey:
        """The key that may verify a token with this header, or raise KeysUnavailable."""
        if self._stale():
            await self._refresh(forced=True)
            if self._stale():
                # Keys older than the TTL are never used, whatever the reason no fresh ones came.
                raise KeysUnavailable("the issuer's signing keys could not be refreshed")
        key = self._select(kid, algorithm)
        if key is None and kid is not None and self._may_refresh(self._clock()):
            await self._refresh(forced=False)
            key = self._select(kid, algorithm)
        if key is None:
            raise KeysUnavailable("no signing key matches the token")
        return key

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self.ttl

    def _may_refresh(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self.refresh_interval

    def _select(self, kid: str | None, algorithm: str) -> SigningKey | None:
        fitting = [key for key in self._keys if key.fits(algorithm)]
        if kid is None:
            # Without a kid the choice must not be a guess: only a single fitting key will do.
            return fitting[0] if len(fitting) == 1 else None
        return next((key for key in fitting if key.kid == kid), None)

    async def _refresh(self, *, forced: bool) -> None:
        async with self._lock:
            # Another task may have refreshed while this one waited for the lock.
            now = self._clock()
            if forced and self._fetched_at is not None and now - self._fetched_at < self.ttl:
                return
            if not forced and not self._may_refresh(now):
                return
            if forced and self._attempted_at is not None and now - self._attempted_at < _OUTAGE_RETRY:
                # The source just failed: during an outage a flood of requests is refused at once
                # instead of queueing one fetch (and its timeout) each.
                return
            self._attempted_at = self._clock()
            self.fetches += 1
            try:
                keys = parse_jwks(await self._fetch())
            except Exception as exc:
                logger.warning("cannot refresh the issuer's signing keys: %s", _describe(exc))
                if self._fetched_at is None or self._clock() - self._fetched_at >= self.ttl:
                    self._keys = ()  # past the TTL: fail closed rather than trust stale keys
                return
            self._keys = keys
            self._fetched_at = self._clock()


def parse_jwks(raw: bytes) -> tuple[SigningKey, ...]:
    """Public signing keys of a JWKS document; unusable entries are skipped, not fatal."""
    if len(raw) > MAX_JWKS_BYTES:
        raise ValueError("JWKS document too large")
    document = json.loads(raw)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("JWKS document has no 'keys' list")
    keys: list[SigningKey] = []
    for entry in document["keys"][:MAX_KEYS]:
        if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC", "OKP"):
            continue  # symmetric (oct) and unknown key types are never used
        if entry.get("use", "sig") != "sig" or "d" in entry:
            continue  # encryption keys, and private keys published by mistake
        ops = entry.get("key_ops")
        if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
            continue
        kid, alg, crv = entry.get("kid"), entry.get("alg"), entry.get("crv")
        if (kid is not None and not isinstance(kid, str)) or (
            alg is not None and alg not in KEY_KIND_BY_ALGORITHM
        ):
            continue
        try:
            material = PyJWK(entry, algorithm=alg or _default_algorithm(entry)).key
        except (PyJWKError, PyJWTError, ValueError, TypeError, KeyError):
            continue
        keys.append(SigningKey(kid, str(entry["kty"]), crv if isinstance(crv, str) else None, alg, material))
    return tuple(keys)


def _default_algorithm(entry: Mapping[str, Any]) -> str:
    kty, crv = entry.get("kty"), entry.get("crv")
    if kty == "RSA":
        return "RS256"
    if kty == "OKP":
        return "EdDSA"
    return {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}.get(str(crv), "ES256")


def _file_fetcher(path: Path) -> Fetcher:
    async def read() -> bytes:
        with path.open("rb") as handle:
            data = handle.read(MAX_JWKS_BYTES + 1)
        if len(data) > MAX_JWKS_BYTES:
            raise ValueError("JWKS file too large")
        return data

    return read


def _url_fetcher(url: str, timeout: float) -> Fetcher:
    async def fetch() -> bytes:
        with anyio.fail_after(timeout):
            async with (
                httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client,
                client.stream("GET", url, headers={"Accept": "application/json"}) as response,
            ):
                if response.status_code != 200:
                    raise ValueError(f"JWKS endpoint answered HTTP {response.status_code}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_JWKS_BYTES:
                        raise ValueError("JWKS document too large")
                    chunks.append(chunk)
                return b"".join(chunks)

    return fetch


def _describe(exc: BaseException) -> str:
    # Our own messages are safe; library messages may echo URLs or payloads, so keep only the type.
    if isinstance(exc, ValueError) and str(exc).startswith("JWKS"):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return type(exc).__name__
