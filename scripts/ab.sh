#!/usr/bin/env bash
# The guard of the working tree against the guard of another revision,
# timed in one process (probe/ab): batches of AWS-shaped SQS records (10 by
# default) through no guard, the revision's guard and the working tree's, in
# turn.
# Prints, per process, the medians per record and the paired difference
# new - base; run it with the working tree as the revision (HEAD, nothing
# changed) to see the bias of the two copies' code layouts (about 1 ns here).
#
# usage: scripts/ab.sh <revision> [small|4k] [records] [processes] [rounds per process]
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: scripts/ab.sh <revision> [small|4k] [records] [processes] [rounds]}
shape=${2:-small}
records=${3:-10}
processes=${4:-4}
rounds=${5:-8000}
base=target/ab-base
# The revision's checkout goes, whatever happens (only ever this path).
remove_base() {
  git worktree remove --force "$base" 2>/dev/null || rm -rf "$base"
  git worktree prune
}
remove_base
trap remove_base EXIT
git worktree add --quiet --detach "$base" "$rev"
# Another version (the package's first), so that Cargo builds the two
# copies side by side.
perl -0pi -e 's/^version = ".*"$/version = "0.0.0-ab-base"/m' "$base/Cargo.toml"
cargo build --quiet --release --manifest-path probe/ab/Cargo.toml --target-dir target/ab
for _ in $(seq "$processes"); do
  target/ab/release/lambda-loop-guard-ab "$shape" "$records" "$rounds"
done
