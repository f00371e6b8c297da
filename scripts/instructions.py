#!/usr/bin/env python3
"""Instructions per operation of the guard's hot paths, counted by valgrind's
callgrind (repeatable, unlike wall time). Each case of
examples/instruction_probe.rs runs with N=200 and N=1200 iterations; the
difference divided by 1000 is the cost of one iteration, setup excluded.

usage: scripts/instructions.py PROBE_BINARY
"""
import re, subprocess, sys

probe = sys.argv[1]
LOW, HIGH = 200, 1200

def instructions(case, n):
    run = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", probe, case, str(n)],
                         check=True, capture_output=True, text=True)
    return int(re.search(r"Collected : (\d+)", run.stderr).group(1))

def per_iteration(case):
    return (instructions(case, HIGH) - instructions(case, LOW)) / (HIGH - LOW)

rows = [
    ("read Root + our lineage, 150-byte header", per_iteration("header_150"), None),
    ("read Root + our lineage, 2 KiB header", per_iteration("header_2k"), None),
    ("stamp a 150-byte header into a reused buffer", per_iteration("stamp_150"), None),
    ("decode a 1-entry lineage", per_iteration("decode_1"), None),
    ("decode a 16-entry lineage", per_iteration("decode_16"), None),
    ("encode a 3-entry lineage", per_iteration("encode_16"), None),
]
bare, guarded = per_iteration("direct_bare"), per_iteration("direct_guarded")
rows.append(("direct invocation: bare / guarded / added", guarded - bare, f"{bare:,.0f} / {guarded:,.0f}"))
bare, guarded = per_iteration("sqs100_bare"), per_iteration("sqs100_guarded")
rows.append(("SQS batch of 100, per record: added by the guard", (guarded - bare) / 100, f"batch {bare:,.0f} / {guarded:,.0f}"))
print("| operation | instructions | context |")
print("| --- | ---: | --- |")
for what, value, context in rows:
    print(f"| {what} | {value:,.0f} | {context or ''} |")
