#!/usr/bin/env bash
# Runs each fuzz target (fuzz/fuzz_targets) for SECONDS (default 30) with
# cargo-fuzz on a nightly toolchain, starting from the seed corpus and the
# target's dictionary. A failed invariant stops the script with its input in
# fuzz/artifacts/. Without a nightly toolchain it says so loudly and exits 0:
# the seeds still run under stable in `cargo test` (tests/fuzz_corpus.rs).
#
#   bash scripts/fuzz.sh            # 30 s per target
#   bash scripts/fuzz.sh 600        # a longer campaign
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "!!! FUZZING SKIPPED: no nightly toolchain here (rustup toolchain list)."
  echo "!!! Only the seed corpora were checked (tests/fuzz_corpus.rs, stable)."
  exit 0
fi
tools="$PWD/target/tools"
export PATH="$tools/bin:$PATH"
mkdir -p target/fuzz-corpus
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "== installing cargo-fuzz into $tools"
  if ! cargo install cargo-fuzz --locked --root "$tools" >target/fuzz-corpus/install.log 2>&1; then
    echo "!!! FUZZING SKIPPED: cargo-fuzz could not be installed (target/fuzz-corpus/install.log):"
    tail -5 target/fuzz-corpus/install.log
    echo "!!! Only the seed corpora were checked (tests/fuzz_corpus.rs, stable)."
    exit 0
  fi
fi

export CARGO_TARGET_DIR="$PWD/target/fuzz-build"
# The fuzz build is not the crate's lint run.
unset RUSTFLAGS
if ! cargo +nightly fuzz build --fuzz-dir fuzz --sanitizer none >target/fuzz-corpus/build.log 2>&1; then
  echo "!!! FUZZING SKIPPED: the fuzz targets did not build with nightly (target/fuzz-corpus/build.log):"
  tail -15 target/fuzz-corpus/build.log
  echo "!!! Only the seed corpora were checked (tests/fuzz_corpus.rs, stable)."
  exit 0
fi
# A fixed seed in CI: the same inputs on every run, no failure by chance.
seed="${FUZZ_SEED:-1}"
dict_of() {
  case "$1" in
    lineage) echo fuzz/dict/lineage.dict ;;
    trace_header) echo fuzz/dict/trace_header.dict ;;
    *) echo fuzz/dict/json.dict ;;
  esac
}
for target in lineage trace_header async_payload json_key_text sns_envelope sqs_verdicts; do
  work="target/fuzz-corpus/$target"
  mkdir -p "$work"
  echo "== fuzz $target for ${seconds}s"
  log="target/fuzz-corpus/$target.log"
  # New inputs go to the working corpus; the committed seeds are read only.
  status=0
  cargo +nightly fuzz run --fuzz-dir fuzz --sanitizer none "$target" "$work" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -seed="$seed" -dict="$(dict_of "$target")" -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "^stat::(number_of_executed_units|new_units_added)|panicked|SUMMARY" "$log" || true
  if [ "$status" -ne 0 ]; then
    echo "!!! fuzz target $target broke an invariant (exit $status): input in fuzz/artifacts/$target"
    tail -40 "$log"
    exit 1
  fi
done
echo "fuzzing: every target ran ${seconds}s without breaking an invariant"
