#!/bin/sh
# Training throughput of examples/train_mpi with 1 rank x 2 threads and 2
# ranks x 1 thread, in interleaved rounds (docs/PERFORMANCE.md,
# "Data-parallel training"). Slow and load-sensitive; not part of make test.
# Usage: bench/mpi.sh BUILD_DIR [DESCRIPTOR] [STEPS] [ROUNDS]
set -eu
B=$1 DESC=${2:-models/fmnist-mid.json} STEPS=${3:-20} ROUNDS=${4:-2}
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export TG_DYNAMIC_THREADS=0
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
  for np in 1 2; do
    th=$((2 / np))
    # --bind-to none: Open MPI binds each rank to one core by default (np <= 2),
    # which would put a rank's 2 threads on one core
    line=$(mpirun --oversubscribe --bind-to none -np $np "$B/examples/train_mpi" --model "$DESC" --data fmnist \
           --limit 2000 --threads $th --steps "$STEPS" --every 0 --out "$T/r" | grep "calls in")
    echo "round $r: $np rank(s) x $th thread(s): ${line#train_mpi: } (load $(cut -d" " -f1 /proc/loadavg))"
    rm -rf "$T/r"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
