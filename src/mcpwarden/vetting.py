"""Startup-command vetting: what a stdio server's `command` + `args` would do when started.

Starting a stdio MCP server runs arbitrary code on the user's machine (THREATS A8, C19), so both the
scanner (`mcpwarden scan`, a static check of every config entry) and the gateway (before it spawns
an upstream) ask this module first. `vet_command` is a pure function: no I/O, no environment, the
same answer for the same argv, so its results can be pinned, compared and tested as a truth table.

The gateway spawns argv without a shell; a config can still smuggle a shell in (`bash -c "…"`),
paste a shell line into `command` (which some clients run through a shell), or start an
unpinned package that the registry may replace tomorrow (postmark-mcp, C19). We therefore parse
the argv, any inline shell script it carries (recursively), and each simple command inside it.

Finding ids are stable kebab-case strings; severities use the scanner's scale
(`info` < `low` < `medium` < `high` < `critical`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITY_ORDER: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")

SHELL_INTERPRETER = "shell-interpreter"
INLINE_CODE = "inline-code"
SHELL_METACHARACTERS = "shell-metacharacters"
DOWNLOAD_AND_EXECUTE = "download-and-execute"
DATA_EXFILTRATION = "data-exfiltration"
PRIVILEGE_ESCALATION = "privilege-escalation"
DESTRUCTIVE_COMMAND = "destructive-command"
UNPINNED_PACKAGE = "unpinned-package"


@dataclass(frozen=True)
class CommandFinding:
    """One reason to distrust a startup command; `evidence` is the offending fragment."""

    id: str
    severity: Severity
    title: str
    detail: str
    evidence: str


_SHELLS = frozenset(
    {
        "sh",
        "bash",
        "zsh",
        "dash",
        "ksh",
        "mksh",
        "fish",
        "csh",
        "tcsh",
        "ash",
        "busybox",
        "cmd",
        "powershell",
        "pwsh",
    }
)
# Options that make a shell run the next argument as a script.
_SHELL_SCRIPT_FLAGS = frozenset({"-c", "/c", "/k", "-command", "-c:", "-encodedcommand", "-ec", "-e"})
_INLINE_CODE_FLAGS = {
    "python": ("-c",),
    "python3": ("-c",),
    "python2": ("-c",),
    "pypy": ("-c",),
    "pypy3": ("-c",),
    "node": ("-e", "--eval", "-p", "--print"),
    "deno": ("eval",),
    "bun": ("-e", "--eval"),
    "perl": ("-e", "-E"),
    "ruby": ("-e",),
    "php": ("-r",),
    "osascript": ("-e",),
}
_DOWNLOADERS = frozenset({"curl", "wget", "fetch", "iwr", "irm", "invoke-webrequest", "invoke-restmethod"})
_EXECUTORS = (
    r"(?:sh|bash|zsh|dash|ksh|fish|python[0-9.]*|node|perl|ruby|php|iex|invoke-expression|pwsh|powershell)"
)
_PRIVILEGE_PROGRAMS = frozenset({"sudo", "doas", "su", "pkexec", "runas", "gosu", "su-exec", "chroot"})
_OPERATORS = frozenset({"&&", "||", ";", "|", "&", ";;", "|&", "\n"})
# Characters a shell would interpret; in a plain argv they do nothing, which is exactly why their
# presence means the entry was written for (or will be run by) a shell.
# `${VAR}` is left out on purpose: MCP clients expand it themselves, it is how configs reference secrets.
_METACHAR_PATTERN = re.compile(r"&&|\|\||[;|`]|\$\(|>\s*\S|<\(|\n")
_SENSITIVE_PATH = re.compile(
    r"(~|\$HOME|/home/[^/\s]+|/root|%USERPROFILE%)?/?\.(ssh|aws|gnupg|kube|docker|npmrc|netrc|pypirc|env)\b"
    r"|id_rsa|id_ed25519|/etc/(passwd|shadow|sudoers)|\.cursor/mcp\.json|claude_desktop_config",
    re.IGNORECASE,
)
_SEMVER = re.compile(r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$")
_GIT_SHA = re.compile(r"^[0-9a-f]{40}$")


def vet_command(command: str, args: Sequence[str]) -> list[CommandFinding]:
    """Every reason to distrust starting `command` with `args`, most severe first; [] if none."""
    # One finding per id (the most severe occurrence): the reader needs the reason, not every echo.
    findings: dict[str, CommandFinding] = {}
    argv = [command, *args]
    if _looks_like_shell_line(command):
        # A whole shell line in `command`: clients that spawn through a shell would interpret it.
        _add(findings, _metachar_finding(command, interpreted=True))
        argv = [*_split_script(command), *args]
    else:
        for arg in args:
            if _METACHAR_PATTERN.search(arg):
                _add(findings, _metachar_finding(arg, interpreted=False))
    for finding in _vet_argv(argv, depth=0):
        _add(findings, finding)
    order = {severity: index for index, severity in enumerate(SEVERITY_ORDER)}
    return sorted(findings.values(), key=lambda f: (-order[f.severity], f.id, f.evidence))


def _add(findings: dict[str, CommandFinding], finding: CommandFinding | None) -> None:
    if finding is None:
        return
    existing = findings.get(finding.id)
    if existing is None or SEVERITY_ORDER.index(finding.severity) > SEVERITY_ORDER.index(existing.severity):
        findings[finding.id] = finding


def _looks_like_shell_line(command: str) -> bool:
    if _METACHAR_PATTERN.search(command):
        return True
    # "C:\Program Files\nodejs\npx.cmd" is one program with a space in its path, not a shell line.
    return bool(re.search(r"\s", command.strip())) and not re.match(r"^[A-Za-z]:[\\/]", command)


def _metachar_finding(text: str, *, interpreted: bool) -> CommandFinding | None:
    match = _METACHAR_PATTERN.search(text)
    if match is None:
        return None
    if interpreted:
        return CommandFinding(
            SHELL_METACHARACTERS,
            "high",
            "Shell operators in the startup command",
            "The command contains shell syntax; if a client runs it through a shell, every part of "
            "the line executes (chained commands, pipes, substitutions).",
            _clip(text),
        )
    return CommandFinding(
        SHELL_METACHARACTERS,
        "medium",
        "Shell operators in a startup argument",
        "An argument contains shell syntax. Without a shell it is passed literally, but such entries "
        "are usually pasted shell lines, and any shell-based launcher would execute them.",
        _clip(text),
    )


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _split_script(script: str) -> list[str]:
    """Tokens of a shell script, operators as their own tokens; tolerant of broken quoting."""
    lexer = shlex.shlex(script.replace("\n", " ; "), posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:
        return script.split()


def _simple_commands(tokens: Sequence[str]) -> Iterator[list[str]]:
    current: list[str] = []
    for token in tokens:
        if token in _OPERATORS or token in {"(", ")", "<(", "$("}:
            if current:
                yield current
            current = []
        else:
            current.append(token)
    if current:
        yield current


def _program(token: str) -> str:
    name = re.split(r"[\\/]", token)[-1].lower()
    return name[:-4] if name.endswith((".exe", ".cmd", ".bat")) else name


def _vet_argv(tokens: Sequence[str], depth: int) -> Iterator[CommandFinding]:
    script = " ".join(tokens)
    yield from _vet_script_patterns(script)
    for simple in _simple_commands(tokens):
        yield from _vet_simple(simple, depth)


def _vet_script_patterns(script: str) -> Iterator[CommandFinding]:
    lowered = script.lower()
    downloader = r"(?:curl|wget|fetch|iwr|irm|invoke-webrequest|invoke-restmethod)"
    patterns = (
        rf"\b{downloader}\b[^;&]*\|\s*(?:sudo\s+)?{_EXECUTORS}\b",  # curl … | sh
        rf"<\(\s*{downloader}\b",  # bash <(curl …)
        rf"\$\(\s*{downloader}\b",  # sh -c "$(curl …)"
        rf"\b(?:iex|invoke-expression)\b.*\b(?:{downloader}|downloadstring|downloadfile)\b",
        rf"\b(?:{downloader}|downloadstring)\b.*\|\s*(?:iex|invoke-expression)\b",
        rf"\b{downloader}\b[^;]*(?:-o|-O|--output)\s*\S+.*(?:chmod\s+\+?[0-7]*x|&&\s*\./)",
    )
    for pattern in patterns:
        match = re.search(pattern, lowered)
        if match:
            yield CommandFinding(
                DOWNLOAD_AND_EXECUTE,
                "critical",
                "Downloads code and executes it",
                "The startup command fetches code from the network and runs it, so whoever controls "
                "that URL (or the network path to it) runs code on this machine.",
                _clip(script[match.start() : match.end()]),
            )
            return


def _vet_simple(tokens: list[str], depth: int) -> Iterator[CommandFinding]:
    if not tokens:
        return
    # Skip leading environment assignments (FOO=bar cmd …) and `env`/`exec` wrappers.
    index = 0
    while index < len(tokens) and (
        re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", tokens[index])
        or _program(tokens[index]) in {"env", "exec", "nohup"}
    ):
        index += 1
    tokens = tokens[index:]
    if not tokens:
        return
    program = _program(tokens[0])
    rest = tokens[1:]
    lowered_rest = [token.lower() for token in rest]

    if program in _PRIVILEGE_PROGRAMS:
        yield CommandFinding(
            PRIVILEGE_ESCALATION,
            "critical",
            f"Runs with elevated privileges ({program})",
            "The server would start with administrator/root rights; an MCP server never needs them, "
            "and a compromised one would own the machine.",
            _clip(" ".join(tokens)),
        )
        # Vet what runs under the elevated program as well (after the elevating program's own options).
        position = 0
        while position < len(rest) and rest[position].startswith("-"):
            position += 2 if rest[position] in {"-u", "-g", "-C", "-p", "-h", "-U", "-r", "-t"} else 1
        inner = rest[position:]
        if inner and depth < 4:
            yield from _vet_simple(inner, depth + 1)
        return
    if program == "docker" or program == "podman":
        yield from _vet_container(program, rest)
    if program in {"chmod"} and any(re.search(r"[ugoa]*\+s|^[0-7]?[4-7][0-7]{3}$", t) for t in rest):
        yield CommandFinding(
            PRIVILEGE_ESCALATION,
            "high",
            "Sets a setuid/setgid bit",
            "chmod +s lets a program run as its owner, a classic privilege-escalation step.",
            _clip(" ".join(tokens)),
        )
    if program == "setcap":
        yield CommandFinding(
            PRIVILEGE_ESCALATION,
            "high",
            "Grants Linux capabilities",
            "setcap gives a binary root powers.",
            _clip(" ".join(tokens)),
        )
    yield from _vet_destructive(program, rest, lowered_rest, tokens)
    if program in _DOWNLOADERS:
        yield from _vet_downloader(program, rest, tokens)
    if program in _SHELLS:
        yield from _vet_shell(program, rest, lowered_rest, tokens, depth)
    flags = _INLINE_CODE_FLAGS.get(
        re.sub(r"[0-9.]+$", "", program) if program.startswith("python") else program
    )
    if flags is None and program.startswith("python"):
        flags = ("-c",)
    if flags is not None:
        for position, token in enumerate(rest):
            if token in flags and position + 1 < len(rest):
                code = rest[position + 1]
                yield CommandFinding(
                    INLINE_CODE,
                    "medium",
                    f"Runs inline {program} code",
                    "The server is a code snippet in the config rather than an installed, reviewable "
                    "program; read it before starting it.",
                    _clip(code),
                )
                if depth < 4:
                    yield from _vet_script_patterns(code)
                    # Inline code often shells out; vet any quoted command lines it contains.
                    for quoted in re.findall(r"['\"]([^'\"]{3,})['\"]", code):
                        yield from (f for f in _vet_script_patterns(quoted))
                break
    yield from _vet_package_runner(program, rest)


def _vet_shell(
    program: str, rest: list[str], lowered_rest: list[str], tokens: list[str], depth: int
) -> Iterator[CommandFinding]:
    script_index = next(
        (
            i
            for i, token in enumerate(lowered_rest)
            if token in _SHELL_SCRIPT_FLAGS or re.fullmatch(r"-[a-z]*c", token)
        ),
        None,
    )
    if script_index is not None and script_index + 1 < len(rest):
        script = rest[script_index + 1]
        yield CommandFinding(
            SHELL_INTERPRETER,
            "high",
            f"Starts a shell ({program}) with an inline script",
            "The server is started through a shell that interprets a script from the config: every "
            "command in it runs, and shell expansion applies. Start the server's program directly.",
            _clip(" ".join(tokens)),
        )
        metachar = _metachar_finding(script, interpreted=True)
        if metachar is not None:
            yield metachar
        if depth < 4:
            yield from _vet_argv(_split_script(script), depth + 1)
    elif depth == 0:
        # Inside a script a bare shell reads a pipe; that case is download-and-execute's to report.
        yield CommandFinding(
            SHELL_INTERPRETER,
            "medium",
            f"Starts a shell ({program})",
            "The server is started through a shell (a script file or interactive shell); what it runs "
            "is not visible in the config.",
            _clip(" ".join(tokens)),
        )


def _vet_destructive(
    program: str, rest: list[str], lowered_rest: list[str], tokens: list[str]
) -> Iterator[CommandFinding]:
    destructive = False
    if program == "rm":
        short_flags = "".join(t[1:] for t in rest if t.startswith("-") and not t.startswith("--"))
        destructive = (
            "r" in short_flags.lower() or "--recursive" in lowered_rest or "--no-preserve-root" in rest
        )
    elif program in {"mkfs", "shred", "wipefs", "fdisk", "sfdisk", "parted"} or program.startswith("mkfs."):
        destructive = True
    elif program == "dd":
        destructive = any(t.startswith("of=/dev/") for t in rest)
    elif program in {"del", "erase", "rd", "rmdir"}:
        destructive = any(t in {"/s", "/q"} for t in lowered_rest)
    elif program in {"format", "diskpart"}:
        destructive = True
    elif program in {"remove-item", "ri"}:
        destructive = "-recurse" in lowered_rest
    elif program == "find":
        destructive = "-delete" in lowered_rest
    elif program == "git":
        destructive = (
            "clean" in lowered_rest and any("f" in t for t in lowered_rest if t.startswith("-"))
        ) or ("reset" in lowered_rest and "--hard" in lowered_rest)
    if destructive:
        yield CommandFinding(
            DESTRUCTIVE_COMMAND,
            "critical",
            f"Destructive command ({program})",
            "The startup command deletes or overwrites data; no MCP server needs to do that to start.",
            _clip(" ".join(tokens)),
        )


def _vet_downloader(program: str, rest: list[str], tokens: list[str]) -> Iterator[CommandFinding]:
    uploads = False
    for position, token in enumerate(rest):
        following = rest[position + 1] if position + 1 < len(rest) else ""
        if token in {
            "-d",
            "--data",
            "--data-binary",
            "--data-raw",
            "--data-urlencode",
            "-F",
            "--form",
            "-T",
            "--upload-file",
            "--post-file",
            "--body-file",
        }:
            uploads = (
                uploads
                or following.startswith("@")
                or token in {"-T", "--upload-file", "--post-file", "--body-file"}
                or "=@" in following
            )
        elif token.startswith(("--data=@", "--data-binary=@", "--post-file=")):
            uploads = True
    sensitive = _SENSITIVE_PATH.search(" ".join(rest))
    if uploads:
        yield CommandFinding(
            DATA_EXFILTRATION,
            "critical" if sensitive else "high",
            "Uploads local files to a remote host",
            "The startup command sends a local file over the network"
            + (" and the file looks like a credential" if sensitive else "")
            + ".",
            _clip(" ".join(tokens)),
        )
    else:
        yield CommandFinding(
            DOWNLOAD_AND_EXECUTE,
            "medium",
            f"Network download at startup ({program})",
            "The startup command fetches something from the network; what runs may change without the "
            "config changing.",
            _clip(" ".join(tokens)),
        )


_NPX_VALUE_OPTIONS = frozenset({"-p", "--package", "-c", "--call", "--registry", "--cache", "--userconfig"})


def _vet_package_runner(program: str, rest: list[str]) -> Iterator[CommandFinding]:
    runner: str | None = None
    args = list(rest)
    if program in {"npx", "bunx"}:
        runner = program
    elif program in {"pnpm", "yarn"} and args[:1] == ["dlx"]:
        runner, args = f"{program} dlx", args[1:]
    elif program == "npm" and args[:1] in (["exec"], ["x"]):
        runner, args = "npm exec", args[1:]
    elif program in {"uvx"}:
        runner = "uvx"
    elif program == "uv" and args[:2] == ["tool", "run"]:
        runner, args = "uv tool run", args[2:]
    elif program == "pipx" and args[:1] == ["run"]:
        runner, args = "pipx run", args[1:]
    if runner is None:
        return
    auto_yes = any(token in {"-y", "--yes"} for token in args)
    specs = _package_specs(runner, args)
    if not specs:
        return
    for spec in specs:
        pinned = _python_spec_pinned(spec) if runner.startswith(("uv", "pipx")) else _npm_spec_pinned(spec)
        if pinned:
            continue
        severity: Severity = "high" if auto_yes else "medium"
        yield CommandFinding(
            UNPINNED_PACKAGE,
            severity,
            f"Unpinned package started with {runner}",
            f"{runner} fetches '{spec}' from the registry at whatever version is current when the client "
            "starts, so a compromised or hijacked release runs without any change to this config"
            + (" (and -y installs it without asking)" if auto_yes else "")
            + ". Pin an exact version (npm: name@1.2.3; PyPI: name==1.2.3).",
            _clip(" ".join([runner, *args])),
        )


def _package_specs(runner: str, args: list[str]) -> list[str]:
    """The package specs a runner would install: explicit --package/--from/--spec, else the first operand."""
    explicit: list[str] = []
    first_operand: str | None = None
    skip = False
    value_options = set(_NPX_VALUE_OPTIONS) | {
        "--from",
        "--spec",
        "--with",
        "--python",
        "-w",
        "--index-url",
        "--index",
        "--pip-args",
    }
    for position, token in enumerate(args):
        if skip:
            skip = False
            continue
        if token == "--":
            if first_operand is None and position + 1 < len(args):
                first_operand = args[position + 1]
            break
        if token in {"-p", "--package", "--from", "--spec", "--with", "-w"}:
            if position + 1 < len(args):
                explicit.append(args[position + 1])
            skip = True
            continue
        option, _, value = token.partition("=")
        if option in {"--package", "--from", "--spec", "--with"} and value:
            explicit.append(value)
            continue
        if token.startswith("-"):
            skip = token in value_options
            continue
        first_operand = token
        break
    specs = explicit or ([first_operand] if first_operand else [])
    # Local paths and files are not registry packages.
    return [
        s
        for s in specs
        if not re.match(r"^(\.{0,2}/|[A-Za-z]:\\|~|file:)", s) and not s.endswith((".js", ".py"))
    ]


def _npm_spec_pinned(spec: str) -> bool:
    if re.match(r"^(github:|git\+|git:|https?://|[\w.-]+/[\w.-]+#)", spec) or (
        spec.count("/") == 1 and "#" in spec
    ):
        ref = spec.rsplit("#", 1)[1] if "#" in spec else ""
        return bool(_GIT_SHA.match(ref))
    name_and_version = spec[1:] if spec.startswith("@") else spec
    if "@" not in name_and_version:
        return False
    version = name_and_version.rsplit("@", 1)[1]
    return bool(_SEMVER.match(version))


def _python_spec_pinned(spec: str) -> bool:
    if spec.startswith("git+"):
        ref = spec.rsplit("@", 1)[1] if spec.count("@") >= 1 else ""
        return bool(_GIT_SHA.match(ref.split("#")[0]))
    if "===" in spec or (re.search(r"==\s*[0-9][0-9A-Za-z.+!-]*\s*$", spec) and "*" not in spec):
        return True
    # uvx also accepts name@version.
    return bool(re.match(r"^[A-Za-z0-9_.\[\],-]+@v?\d+(\.\d+)*([a-z]+\d*)?$", spec))


def _vet_container(program: str, rest: list[str]) -> Iterator[CommandFinding]:
    if not rest or rest[0] not in {"run", "create"}:
        return
    args = rest[1:]
    joined = " ".join(args)
    if "--privileged" in args or re.search(
        r"--pid[= ]host|--cap-add[= ](all|sys_admin)|-v\s+/:/|--volume[= ]/:/", joined, re.IGNORECASE
    ):
        yield CommandFinding(
            PRIVILEGE_ESCALATION,
            "critical",
            f"Privileged container ({program})",
            "The container gets host-level privileges (--privileged, host PID namespace, the host root "
            "mounted or broad capabilities), which undoes the isolation a container would give.",
            _clip(" ".join([program, *rest])),
        )
    image = _container_image(args)
    if image is None:
        return
    if "@sha256:" in image:
        return
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    if tag in (None, "latest"):
        yield CommandFinding(
            UNPINNED_PACKAGE,
            "medium",
            f"Unpinned container image ({image})",
            "The image is pulled by a moving tag; pin it by digest (image@sha256:…) or a version tag.",
            _clip(" ".join([program, *rest])),
        )


def _container_image(args: list[str]) -> str | None:
    value_flags = {
        "-e",
        "--env",
        "-v",
        "--volume",
        "--name",
        "-p",
        "--publish",
        "--network",
        "--net",
        "-w",
        "--workdir",
        "-u",
        "--user",
        "--mount",
        "--env-file",
        "--entrypoint",
        "-l",
        "--label",
        "--cap-add",
        "--cap-drop",
        "--pid",
        "--platform",
        "-m",
        "--memory",
        "--cpus",
        "--add-host",
    }
    skip = False
    for token in args:
        if skip:
            skip = False
            continue
        if token.startswith("-"):
            skip = token in value_flags
            continue
        return token
    return None
