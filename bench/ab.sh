#!/bin/sh
# bench/ab.sh - two or more builds of the library, timed in interleaved rounds
# on one checkpoint (docs/PERFORMANCE.md "Generator at batch 1 in bf16").
#
#   sh bench/ab.sh CKPT ROUNDS PRECISION BATCH SECONDS NAME=BUILD_DIR...
#   e.g. sh bench/ab.sh build/ort/TransGAN-S/weights.safetensors 7 bf16 1 2 \
#            base=../main/build new=build
#
# This tree's bench/ort/lib_bench.c is compiled against each BUILD_DIR's
# libtransgan.so (so every build prints the same fields, cpu_ms_per_img
# included); then every round runs each build once (generator, sampling-only
# load, 2 threads, OMP_WAIT_POLICY=passive or $AB_WAIT, SECONDS of calls after a
# warm-up).
# Prints one line per run and a summary: medians of images/s and of CPU ms
# per image, and each build's ratio to the first. On a busy host images/s
# follow the other jobs; CPU time per image is the steadier figure.
set -e
[ $# -ge 6 ] || { sed -n '3,5p' "$0"; exit 2; }
CKPT=$1 ROUNDS=$2 PREC=$3 BATCH=$4 SECS=$5
shift 5
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
SRC=$(dirname "$0")/ort/lib_bench.c
INC=$(dirname "$0")/../include
for spec in "$@"; do
    name=${spec%%=*} dir=$(cd "${spec#*=}" && pwd)
    cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -I"$INC" -o "$T/$name" "$SRC" -L"$dir" -ltransgan \
        -Wl,-rpath,"$dir" -lm
done
export OMP_NUM_THREADS=2
# AB_WAIT=default leaves OpenMP's spinning default (the library's best at
# batch 1 in bench/ort/compare.py's tuning); unset, threads sleep (passive)
case ${AB_WAIT:-passive} in
default) unset OMP_WAIT_POLICY ;;
*) export OMP_WAIT_POLICY=${AB_WAIT:-passive} ;;
esac
echo "# start $(date -u +%H:%M:%S) UTC, loadavg $(cat /proc/loadavg)" | tee "$T/log"
i=0
while [ $i -lt "$ROUNDS" ]; do
    i=$((i + 1))
    for spec in "$@"; do
        name=${spec%%=*}
        "$T/$name" "$CKPT" --batch "$BATCH" --seconds "$SECS" --runs 1 --load sampling-only \
            --precision "$PREC" | sed "s/^/$name /" | tee -a "$T/log"
    done
done
echo "# end $(date -u +%H:%M:%S) UTC, loadavg $(cat /proc/loadavg)" | tee -a "$T/log"
/usr/bin/python3 - "$T/log" <<'EOF'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    if line.startswith("#"):
        continue
    name, js = line.split(" ", 1)
    d = json.loads(js)
    r = runs.setdefault(name, {"ips": [], "cpu": [], "rss": []})
    r["ips"].append(d["img_per_s"]["median"])
    r["cpu"].append(d["cpu_ms_per_img"])
    r["rss"].append(d["peak_rss_mib"])
names = list(runs)
for n in names:
    r = runs[n]
    print(f"{n}: images/s median {statistics.median(r['ips']):.1f} ({min(r['ips']):.1f}-{max(r['ips']):.1f}), "
          f"CPU ms/image median {statistics.median(r['cpu']):.2f} ({min(r['cpu']):.2f}-{max(r['cpu']):.2f}), "
          f"peak RSS {max(r['rss']):.0f} MiB, {len(r['ips'])} rounds")
b = runs[names[0]]
for n in names[1:]:
    r = runs[n]
    print(f"{n} / {names[0]}: images/s {statistics.median(r['ips']) / statistics.median(b['ips']):.3f}x "
          f"(median of the rounds' ratios {statistics.median([x / y for x, y in zip(r['ips'], b['ips'])]):.3f}x), "
          f"CPU per image {statistics.median(b['cpu']) / statistics.median(r['cpu']):.3f}x less")
EOF
