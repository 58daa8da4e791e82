#!/bin/sh
# Sprite latency and training speed beside 0-4 busy processes (bench/latency.c),
# with the library's default thread count and with a fixed count of 2 (the
# behaviour before the default followed the free CPUs), interleaved.
#   bench/latency.sh BUILD_DIR [SECONDS] [ROUNDS]  ->  bench/results/latency.{md,jsonl}
# Prints the machine's load before it starts: other work on the machine adds to
# the busy processes this script starts.
set -eu
B=${1:-build} SEC=${2:-10} ROUNDS=${3:-1}
BIN=$B/bench/latency
MODEL=models/pretrained/fmnist-mid.safetensors
TRAIN=models/fmnist-demo.json
out=bench/results/latency
mkdir -p bench/results
: > $out.jsonl
echo "latency: load before: $(cat /proc/loadavg); $(nproc) CPUs; $SEC s per run, $ROUNDS round(s)"
for r in $(seq 1 "$ROUNDS"); do
  for k in 0 1 2 3 4; do
    for t in default 2; do
      targ=""; [ "$t" = default ] || targ="--threads $t"
      $BIN $MODEL --busy $k --seconds "$SEC" $targ | tee -a $out.jsonl
    done
  done
  for k in 0 1; do
    for t in default 2; do
      targ=""; [ "$t" = default ] || targ="--threads $t"
      $BIN --train $TRAIN --busy $k --seconds "$SEC" $targ | tee -a $out.jsonl
    done
  done
done
/usr/bin/python3 - "$out" <<'PY'
import json, statistics, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(out + ".jsonl")]
def med(xs): return statistics.median(xs)
lines = ["| busy processes | threads | first ms | median ms | p99 ms | max ms | peak RSS MiB |",
         "|---|---|---|---|---|---|---|"]
for k in range(5):
    for t in (-1, 2):
        rs = [r for r in rows if r["mode"] == "sample" and r["busy"] == k and r["threads"] == t]
        if rs:
            lines.append("| %d | %s | %.1f | %.2f | %.1f | %.1f | %.0f |" % (
                k, "default" if t < 0 else t, med([r["first_ms"] for r in rs]),
                med([r["median_ms"] for r in rs]), med([r["p99_ms"] for r in rs]),
                med([r["max_ms"] for r in rs]), med([r["rss_mib"] for r in rs])))
lines += ["", "| busy processes | threads | training steps/s |", "|---|---|---|"]
for k in range(2):
    for t in (-1, 2):
        rs = [r for r in rows if r["mode"] == "train" and r["busy"] == k and r["threads"] == t]
        if rs:
            lines.append("| %d | %s | %.2f |" % (k, "default" if t < 0 else t,
                                                 med([r["steps_per_s"] for r in rs])))
open(out + ".md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
