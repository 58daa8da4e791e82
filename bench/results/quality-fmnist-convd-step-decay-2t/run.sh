#!/bin/sh
# The step-decay run of README.md: 15 minutes each at lr 8e-4, 4e-4, 2e-4 and
# 1e-4 on 2 threads, each part resumed from the previous part's last
# checkpoint. Run from the repository's root after `make`; OUT is the run
# folder (default /tmp/step-decay). Then score its checkpoints with
#   build/examples/generate OUT/checkpoint_N.safetensors --n 10000 --seed 1 --npy N.npy
#   /usr/bin/python3 bench/fid/fmnist_fid.py N.npy
set -e
HERE=bench/results/quality-fmnist-convd-step-decay-2t
OUT=${OUT:-/tmp/step-decay}
T=build/examples/train
ARGS="--data fmnist --minutes 15 --every-minutes 5 --every 0 --keep 1 --threads 2 --seed 1 --out $OUT"
$T --model $HERE/lr8.json $ARGS
for lr in 4 2 1; do
    last=$(ls "$OUT" | grep '^checkpoint_[0-9]*\.safetensors$' | sort -t_ -k2 -n | tail -1)
    $T --model $HERE/lr$lr.json --resume "$OUT/$last" $ARGS
done
