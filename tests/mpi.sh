#!/bin/sh
# make mpi-test: examples/train_mpi.c under Open MPI's mpirun on this machine.
#  1. 2 ranks (2 images each) against 1 process (4 images), 10 steps of
#     tests/data/tiny-train.json (wgan-gp-eps, DiffAugment, the exact penalty,
#     EMA): weights and EMA within 1e-5 relative (tests/mpi_compare.py), step
#     counters and RNG equal, rank 1's replica identical to rank 0's;
#  2. the 1-rank run is byte-identical to examples/train.c's (same data order);
#  3. a 2-rank run killed (SIGKILL of a rank) after a few checkpoints, resumed
#     from its last checkpoint by every rank, ends byte-identical to an
#     uninterrupted 2-rank run; the killed run's checkpoint is whole.
# Usage: tests/mpi.sh BUILD_DIR
set -u
B=$1
EX=$B/examples
command -v mpirun >/dev/null 2>&1 || { echo "mpi-test: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)"; exit 1; }
[ -x "$EX/train_mpi" ] || { echo "mpi-test: $EX/train_mpi is not built (make examples MPI=1)"; exit 1; }
# Open MPI refuses root unless told; --oversubscribe: more ranks than cores is fine here
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export TG_DYNAMIC_THREADS=0
RUN="mpirun --oversubscribe -np"
TRAIN="$EX/train_mpi --model tests/data/tiny-train.json --data fmnist --limit 200 --threads 1"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
t() { echo "  $1"; if (eval "$1") > "$T/out" 2>&1; then pass=$((pass + 1));
      else fail=$((fail + 1)); echo "  FAILED; its output:"; sed 's/^/    /' "$T/out"; fi; }

t "$RUN 1 $TRAIN --steps 10 --every 0 --out $T/one"
t "$RUN 2 $TRAIN --steps 10 --every 0 --out $T/two --replica-files 1 > $T/two.txt && grep -q 'all-reduced 0.1' $T/two.txt"
t "/usr/bin/python3 tests/mpi_compare.py $T/two/checkpoint.safetensors $T/one/checkpoint.safetensors"
t "cmp $T/two/checkpoint.safetensors $T/two/checkpoint.rank1.safetensors"
t "$EX/train --model tests/data/tiny-train.json --data fmnist --limit 200 --threads 1 --steps 10 --every 0 --out $T/plain && cmp $T/plain/checkpoint.safetensors $T/one/checkpoint.safetensors"

# killed and resumed: 30 D steps, a checkpoint after each
UNTIL=30
t "$RUN 2 $TRAIN --until $UNTIL --every 0 --out $T/straight"
kill_mid() {
  $RUN 2 $TRAIN --until $UNTIL --every 1 --out $T/killed > $T/killed.txt 2>&1 &
  pid=$!
  i=0 # wait for 4 checkpoints (the log's header and 4 lines), at most 120 s
  while [ "$(cat $T/killed/log.tsv 2>/dev/null | wc -l)" -lt 5 ] && [ $i -lt 1200 ]; do
    sleep 0.1; i=$((i + 1))
  done
  pkill -KILL -P "$pid" # this mpirun's ranks, mid-step
  wait "$pid"
  rc=$?
  [ "$rc" -ne 0 ] || { echo "the run ended before it was killed"; return 1; }
  echo "killed (mpirun status $rc); the last checkpoint:"
  /usr/bin/python3 -c "import json,struct,sys; b=open(sys.argv[1],'rb').read(); n=struct.unpack('<Q',b[:8])[0]; print(json.loads(b[8:8+n])['__metadata__']['d_steps'])" $T/killed/checkpoint.safetensors
}
t "kill_mid"
t "$RUN 2 $EX/train_mpi --resume $T/killed/checkpoint.safetensors --data fmnist --limit 200 --threads 1 --until $UNTIL --every 0 > $T/resumed.txt && grep 'at d_steps' $T/resumed.txt && ! grep -q 'at d_steps 0 ' $T/resumed.txt && ! grep -q 'at d_steps $UNTIL ' $T/resumed.txt"
t "cmp $T/straight/checkpoint.safetensors $T/killed/checkpoint.safetensors"
echo "mpi: $pass passed, $fail failed"
test $fail -eq 0
