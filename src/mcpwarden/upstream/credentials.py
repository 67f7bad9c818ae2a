"""The gateway's own credentials for HTTP upstreams; never the client's (THREATS A4, D16).

An upstream gets exactly the headers its configuration names: `headers` (with `${VAR}` from the
environment, expanded at load) and `headers_from_files`, whose values are read from files such
as mounted secrets at every (re)connect, so a rotated secret is picked up by the next reconnect
without a restart. The inbound `Authorization` of a client is never among them: it is consumed
by the HTTP front (`mcpwarden.auth.http`) and never reaches the upstream layer.
"""

from __future__ import annotations

from pathlib import Path

from mcpwarden.config import ServerSpec
from mcpwarden.errors import UpstreamError

MAX_SECRET_FILE_BYTES = 16 * 1024


def upstream_headers(server_id: str, spec: ServerSpec, base_dir: Path | None = None) -> dict[str, str]:
    """The headers to send to server `server_id`; raises UpstreamError naming the file, never its content."""
    headers = dict(spec.headers)
    for name, file_name in spec.headers_from_files.items():
        path = Path(file_name)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            with path.open("rb") as handle:
                raw = handle.read(MAX_SECRET_FILE_BYTES + 1)
        except OSError as exc:
            raise UpstreamError(
                f"server {server_id!r}: cannot read the file for header {name!r} ({path}): {exc.strerror}"
            ) from None
        if len(raw) > MAX_SECRET_FILE_BYTES:
            raise UpstreamError(f"server {server_id!r}: the file for header {name!r} ({path}) is too large")
        try:
            value = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise UpstreamError(f"server {server_id!r}: the file for header {name!r} ({path}) is not UTF-8") from None
        if not value or any(ch in value for ch in "\r\n\0"):
            # A header value must be one line; anything else would let a file inject more headers.
            raise UpstreamError(f"server {server_id!r}: the file for header {name!r} ({path}) must hold one line")
        headers[name] = value
    return headers
