#!/usr/bin/env python3
"""Cold start and size of the guarded vs the bare function (docs/performance.md).

Runs each release binary RUNS times, alternating, from process start to the
point where lambda_runtime would poll for the first event (COLD_START_EXIT=1),
and prints medians and the stripped size of each binary.
"""
import os, shutil, statistics, subprocess, sys, tempfile, time

target = sys.argv[1] if len(sys.argv) > 1 else "target/release/examples"
runs = int(os.environ.get("RUNS", "200"))
env = dict(os.environ, COLD_START_EXIT="1", AWS_REGION="us-east-1",
           AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret",
           AWS_LAMBDA_FUNCTION_NAME="cold-start-fn", AWS_EC2_METADATA_DISABLED="true")
bins = {name: os.path.join(target, f"cold_start_{name}") for name in ("bare", "guarded")}
times = {name: [] for name in bins}
for _ in range(runs):
    for name, path in bins.items():
        start = time.perf_counter()
        subprocess.run([path], env=env, check=True, stdout=subprocess.DEVNULL)
        times[name].append((time.perf_counter() - start) * 1000)
tmp = tempfile.mkdtemp()
sizes = {}
for name, path in bins.items():
    stripped = os.path.join(tmp, name)
    shutil.copy(path, stripped)
    subprocess.run(["strip", stripped], check=True)
    sizes[name] = os.path.getsize(stripped)
shutil.rmtree(tmp)
b, g = statistics.median(times["bare"]), statistics.median(times["guarded"])
print(f"| cold start, process start to first handler ready (median of {runs}) | {b:.2f} ms | {g:.2f} ms | {g - b:+.2f} ms ({g / b:.3f}x) |")
print(f"| stripped release binary | {sizes['bare'] / 1024:.0f} KiB | {sizes['guarded'] / 1024:.0f} KiB | {(sizes['guarded'] - sizes['bare']) / 1024:+.0f} KiB |")
