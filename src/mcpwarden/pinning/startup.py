"""Startup-command vetting at run time (THREATS A8, C19): nothing flagged runs before a human says so.

Before the gateway spawns a stdio server it asks `startup_allowed`. A command that `vet_command`
flags (a shell with an inline script, pipes or `&&`, download-and-execute, `sudo`, an unpinned
`npx -y` / `uvx` package, …) needs an approval of its exact fingerprint — SHA-256 over the argv,
the working directory and the names (not values) of its environment — before its first start.
Until then the server stays not ready, its `last_error` says why, and a pending approval waits in
`approvals.db` (kind `startup`), approved with `mcpwarden approvals approve ID` or `mcpwarden pins
approve SERVER`. Any change to the command needs a new approval. HTTP servers and unflagged
commands start as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from mcpwarden import reasons
from mcpwarden.approvals.store import ApprovalStore
from mcpwarden.audit.events import canonical_json
from mcpwarden.config import ServerSpec, Settings
from mcpwarden.exchange import ALLOW, Decision, deny
from mcpwarden.vetting import vet_command

StartupCheck = Callable[[str, ServerSpec], Decision]
STARTUP_PRINCIPAL = "gateway"


def command_fingerprint(spec: ServerSpec) -> str:
    what = {
        "command": spec.command,
        "args": list(spec.args),
        "cwd": spec.cwd,
        "env_keys": sorted(spec.env),
    }
    return "sha256:" + hashlib.sha256(canonical_json(what).encode("ascii")).hexdigest()


def startup_allowed(
    server_id: str, spec: ServerSpec, store: ApprovalStore, timeout: float = 3600.0
) -> Decision:
    """ALLOW, or a denial naming the pending approval that would let this server start."""
    if spec.command is None:
        return ALLOW
    findings = vet_command(spec.command, spec.args)
    if not findings:
        return ALLOW
    fingerprint = command_fingerprint(spec)
    if store.startup_approved(server_id, fingerprint):
        return ALLOW
    pending = store.pending_startup(server_id, fingerprint)
    if pending is None:
        argv = [spec.command, *spec.args]
        titles = tuple(f"{f.severity}: {f.title} ({f.evidence})" for f in findings)
        prompt = "\n".join(
            [
                f"mcpwarden: allow server {server_id!r} to start with this command?",
                "Command: " + " ".join(argv),
                *(f"  - {title}" for title in titles),
            ]
        )
        pending = store.create(
            kind="startup",
            principal=STARTUP_PRINCIPAL,
            server=server_id,
            tool=server_id,
            digest=fingerprint,
            arguments={"argv": argv, "cwd": spec.cwd, "env_keys": sorted(spec.env)},
            prompt=prompt,
            tier=findings[0].severity,
            reasons=titles,
            timeout=timeout,
        )
    worst = findings[0]
    return deny(
        reasons.STARTUP_NOT_APPROVED,
        f"server {server_id!r} was not started: its command is flagged ({worst.title}); "
        f"approve it with `mcpwarden approvals approve {pending.id}` or `mcpwarden pins approve {server_id}`",
        approval_id=pending.id,
    )


def startup_check_for(settings: Settings) -> StartupCheck | None:
    """The check the gateway's upstreams call before spawning; None when switched off."""
    if not settings.pinning.startup_approval:
        return None
    store: ApprovalStore | None = None

    def check(server_id: str, spec: ServerSpec) -> Decision:
        nonlocal store
        if spec.command is None or not vet_command(spec.command, spec.args):
            return ALLOW  # nothing to ask: do not even create the database
        if store is None:
            store = ApprovalStore.for_state_dir(settings.state_dir)
        return startup_allowed(server_id, spec, store, settings.approvals.timeout)

    return check
