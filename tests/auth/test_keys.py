"""API keys: minted once, stored only as a keyed hash, checked in constant time, revocable live."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from mcpwarden.auth.keys import KEY_PREFIX, ApiKeyStore, KeyStoreError, keys_db_path
from tests.support import MCPWARDEN, stdio_upstream, write_config


def test_a_minted_key_verifies_and_carries_its_principal_and_roles(tmp_path: Path) -> None:
    store = ApiKeyStore(tmp_path)
    record, key = store.create("alice", ("dev", "ops"))
    assert key.startswith(KEY_PREFIX) and record.id in key
    found = store.verify(key)
    assert found is not None and found.principal == "alice" and found.roles == ("dev", "ops")


def test_the_secret_is_never_stored(tmp_path: Path) -> None:
    store = ApiKeyStore(tmp_path)
    record, key = store.create("alice")
    secret = key.removeprefix(f"{KEY_PREFIX}{record.id}_")  # the secret may hold '_' itself
    store.close()
    raw = b"".join(path.read_bytes() for path in tmp_path.iterdir() if path.is_file())
    assert secret.encode() not in raw and key.encode() not in raw


def test_the_stored_digest_is_hmac_sha256_of_id_and_secret_under_the_pepper(tmp_path: Path) -> None:
    """The on-disk format: keys minted by any release keep verifying after an upgrade."""
    store = ApiKeyStore(tmp_path)
    record, key = store.create("alice")
    store.close()
    secret = key.removeprefix(f"{KEY_PREFIX}{record.id}_")  # the secret may hold '_' itself
    pepper = (tmp_path / "api_key_pepper").read_bytes()
    with sqlite3.connect(keys_db_path(tmp_path)) as db:
        (stored,) = db.execute("SELECT digest FROM api_keys WHERE id = ?", (record.id,)).fetchone()
    assert stored == hmac.new(pepper, f"{record.id}.{secret}".encode(), hashlib.sha256).hexdigest()


def test_state_files_are_private(tmp_path: Path) -> None:
    ApiKeyStore(tmp_path / "state").create("alice")
    for name in ("api_key_pepper", "keys.db"):
        mode = stat.S_IMODE((tmp_path / "state" / name).stat().st_mode)
        assert mode & 0o077 == 0, f"{name} is {oct(mode)}"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda key: key[:-1] + ("A" if key[-1] != "A" else "B"),  # wrong secret, right id
        lambda key: key.replace(key[5:21], "0" * 16),  # unknown id
        lambda key: key + "x",
        lambda key: key.upper(),
        lambda key: "",
    ],
)
def test_anything_but_the_exact_key_is_refused(tmp_path: Path, mutate: object) -> None:
    store = ApiKeyStore(tmp_path)
    _, key = store.create("alice")
    assert store.verify(mutate(key)) is None  # type: ignore[operator]


def test_the_pepper_binds_keys_to_their_install(tmp_path: Path) -> None:
    store = ApiKeyStore(tmp_path)
    _, key = store.create("alice")
    store.close()
    (tmp_path / "api_key_pepper").write_bytes(b"x" * 32)  # a copied keys.db elsewhere has another pepper
    assert ApiKeyStore(tmp_path).verify(key) is None


def test_revocation_reaches_another_open_store_at_once(tmp_path: Path) -> None:
    gateway_side = ApiKeyStore(tmp_path)
    cli_side = ApiKeyStore(tmp_path)
    record, key = cli_side.create("alice")
    assert gateway_side.verify(key) is not None
    cli_side.revoke(record.id)
    assert gateway_side.verify(key) is None
    listed = gateway_side.list()
    assert [(r.id, r.active) for r in listed] == [(record.id, False)]


def test_bad_names_and_unknown_ids_are_clear_errors(tmp_path: Path) -> None:
    store = ApiKeyStore(tmp_path)
    for name in ("", "has space", "tab\there", "x" * 200, "-leading"):
        with pytest.raises(KeyStoreError, match="principal"):
            store.create(name)
    with pytest.raises(KeyStoreError, match="no API key"):
        store.revoke("0123456789abcdef")
    with pytest.raises(KeyStoreError) as caught:
        store.revoke("mcpw_not-a-real-key-but-secret-looking")
    assert "secret-looking" not in str(caught.value)


def run_keys(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MCPWARDEN, "keys", *args, "-c", str(config)], capture_output=True, text=True, timeout=60
    )


def test_keys_cli_create_list_revoke(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")})
    created = run_keys(config, "create", "--principal", "ci-bot", "--role", "dev", "--role", "ops")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith(KEY_PREFIX) and " " not in key
    assert created.stdout.count(key) == 1 and key not in created.stderr

    listed = run_keys(config, "list", "--format", "json")
    rows = json.loads(listed.stdout)
    assert [(r["principal"], r["roles"], r["revoked"]) for r in rows] == [("ci-bot", ["dev", "ops"], None)]
    secret = key.removeprefix(f"{KEY_PREFIX}{rows[0]['id']}_")  # the secret may hold '_' itself
    assert key not in listed.stdout and secret not in run_keys(config, "list").stdout

    revoked = run_keys(config, "revoke", rows[0]["id"])
    assert revoked.returncode == 0
    assert json.loads(run_keys(config, "list", "--format", "json").stdout)[0]["revoked"] is not None
    assert run_keys(config, "revoke", "0123456789abcdef").returncode == 1

    with sqlite3.connect(keys_db_path(tmp_path / "state")) as connection:
        digests = [row[0] for row in connection.execute("SELECT digest FROM api_keys")]
    assert len(digests) == 1 and len(digests[0]) == 64


def test_keys_cli_reports_config_errors_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("servers: {}\nno_such_key: 1\n")
    done = run_keys(bad, "list")
    assert done.returncode == 2 and "no_such_key" in done.stderr and "Traceback" not in done.stderr
