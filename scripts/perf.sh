#!/usr/bin/env bash
# Reproduces every number in docs/performance.md. Needs what the tests need
# (Rust, python3) plus `strip`; about 15 minutes on 2 cores, most of it the
# release build. Results go to target/perf/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/perf
mkdir -p "$out"

echo "== criterion: header, lineage, layer, interceptor (in-process)"
cargo bench --all-features --bench guard 2>&1 | tee "$out/guard.txt" | grep -E "^[a-z_]+/|time:" || true

echo "== criterion: opt-in carriers of the sources AWS cannot see"
cargo bench --all-features --bench sources 2>&1 | tee "$out/sources.txt" | grep -E "^[a-z_0-9]+/|time:" || true

echo "== criterion: real SendMessage to moto on loopback"
cargo bench --all-features --bench moto 2>&1 | tee "$out/moto.txt" | grep -E "^moto/|time:" || true

echo "== allocations"
cargo test --all-features --test allocations -- --nocapture 2>&1 | tee "$out/allocations.txt" | grep "allocations:"

echo "== cold start and binary size"
cargo build --release --all-features --example cold_start_bare --example cold_start_guarded
RUNS="${RUNS:-200}" python3 scripts/cold_start.py target/release/examples | tee "$out/cold_start.md"

echo "== instruction counts (valgrind callgrind)"
cargo build --release --manifest-path probe/Cargo.toml --target-dir target/probe-gate
python3 scripts/instructions.py target/probe-gate/release/lambda-loop-guard-probe | tee "$out/instructions.md"
