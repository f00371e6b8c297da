#!/usr/bin/env bash
# Peer comparison: runs DAZN's Node.js loop guard
# (@dazn/lambda-powertools-middleware-stop-infinite-loop, a middy middleware)
# on the same AWS-shaped SQS events as the Rust benches, and prints a
# markdown table of median costs per invocation and per record.
# Needs only node, npm and network. The pinned packages
# (scripts/peer/package.json and package-lock.json) are installed with
# `npm ci` into target/peer (git-ignored); nothing is written elsewhere.
#
#   bash scripts/peer.sh
#   PEER_QUICK=1 bash scripts/peer.sh   # a quick smoke run, rough numbers
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "!!! scripts/peer.sh needs $tool on PATH" >&2
    exit 1
  fi
done

peer="$PWD/target/peer"
mkdir -p "$peer"
cp scripts/peer/package.json scripts/peer/package-lock.json "$peer/"
echo "== npm ci into target/peer ($(node --version), npm $(npm --version))"
# No package needs an install script (aws-sdk's only prints a notice).
npm ci --prefix "$peer" --ignore-scripts --no-audit --no-fund --loglevel=error

# aws-sdk v2 (loaded by the correlation-ids middleware) would print its
# end-of-support notice on stderr at load time.
AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE=1 NODE_PATH="$peer/node_modules" \
  node --expose-gc scripts/peer/bench.js
