#!/usr/bin/env bash
# The performance regression gate: exact instruction counts (valgrind's
# callgrind) of the per-record, per-invocation and per-call paths, checked
# against the budgets in scripts/instructions.py. Exact counts cannot flake
# the way timings do. Builds probe/ (a crate of its own, so the release build
# skips the dev-dependencies: under a minute on 2 cores).
#
# Without valgrind it tries `apt-get install valgrind` (as root, or through
# passwordless sudo); where that is impossible it says so loudly and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      apt-get install -y -qq valgrind >/dev/null 2>&1 || true
    elif sudo -n true 2>/dev/null; then
      sudo -n apt-get install -y -qq valgrind >/dev/null 2>&1 || true
    fi
  fi
fi

cargo clippy --manifest-path probe/Cargo.toml --target-dir target/probe-gate --release -- -D warnings
cargo build --manifest-path probe/Cargo.toml --target-dir target/probe-gate --release
python3 scripts/instructions.py --check target/probe-gate/release/lambda-loop-guard-probe
