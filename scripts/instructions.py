#!/usr/bin/env python3
"""Instructions per call of the guard's hot functions, counted by valgrind's
callgrind on the criterion bench binary (repeatable, unlike wall time).

usage: scripts/instructions.py BENCH_BINARY OUT_DIR
"""
import re, subprocess, sys

bench, out = sys.argv[1], sys.argv[2]
# (benchmark filter, function symbol substring, divisor, what one unit is)
CASES = [
    ("trace_header/parse_read/typical_150B", "TraceHeader::root_and_lineage", 1, "read Root + our lineage from a 150-byte header"),
    ("trace_header/parse_read/large_2KiB", "TraceHeader::root_and_lineage", 1, "the same from a 2 KiB header"),
    ("lineage/decode/1", "lineage::Lineage::decode", 1, "decode a 1-entry lineage"),
    ("lineage/decode/16", "lineage::Lineage::decode", 1, "decode a 16-entry lineage"),
    ("layer/direct/guarded", "LoopGuard<S>>::call", 1, "guard a direct invocation (decide, scope the chain)"),
    ("layer/sqs_10000/guarded", "LoopGuard<S>>::call", 10_000, "guard one SQS record (in a batch of 10,000)"),
    ("interceptor_hooks", "LoopGuardInterceptor as aws_smithy_runtime_api::client::interceptors::Intercept>::modify_before_serialization", 1, "interceptor: SendMessage attribute"),
    ("interceptor_hooks", "LoopGuardInterceptor as aws_smithy_runtime_api::client::interceptors::Intercept>::modify_before_transmit", 1, "interceptor: x-amzn-trace-id header"),
]

def measure(filter_, symbol):
    cg = f"{out}/callgrind.{re.sub('[^a-z0-9]+', '_', filter_)}"
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}", bench,
                    "--bench", "--profile-time", "1", filter_],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--tree=caller", cg],
                          check=True, capture_output=True, text=True).stdout
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if " *  " in line and symbol in line:
            total = int(line.split()[0].replace(",", ""))
            calls, j = 0, i - 1
            while j >= 0 and " <  " in lines[j]:
                m = re.search(r"\((\d+)x\)", lines[j])
                calls += int(m.group(1)) if m else 0
                j -= 1
            return total, calls
    raise SystemExit(f"{symbol} not found in the profile of {filter_}")

print("| what | instructions per unit |")
print("| --- | ---: |")
for filter_, symbol, divisor, what in CASES:
    total, calls = measure(filter_, symbol)
    print(f"| {what} | {total / calls / divisor:,.0f} |")
