#!/bin/sh
# FID over a training run: for every checkpoint_<d_steps>.safetensors that
# examples/train --keep 1 left in RUN_DIR, sample N EMA images with
# examples/generate and score them with the repository's evaluator,
# bench/fid/fmnist_fid.py (its own Fashion-MNIST classifier; docs/QUALITY.md).
# Writes RUN_DIR/fid.tsv (d_steps, g_steps, seconds, fid, classifier_score).
#   scripts/eval_fid.sh RUN_DIR [N]        (from the repository root, after make examples)
set -eu
run=$1 n=${2:-10000}
fid=${FID:-bench/fid/fmnist_fid.py}
out="$run/fid.tsv"
printf 'd_steps\tg_steps\tseconds\tfid\tclassifier_score\n' > "$out"
for ck in $(ls "$run"/checkpoint_*.safetensors | sort -t_ -k2 -n); do
  d=$(basename "$ck" .safetensors | sed 's/checkpoint_//')
  # the training log's line at this save: g_steps and wall seconds
  line=$(awk -F'\t' -v d="$d" '$1 == d {print $2 "\t" $3}' "$run/log.tsv" | tail -n 1)
  build/examples/generate "$ck" --n "$n" --npy "$run/samples.npy" --png "$run/grid_$d.png" > /dev/null
  res=$(/usr/bin/python3 "$fid" --json "$run/samples.npy")
  f=$(echo "$res" | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["fid"], r["classifier_score"], sep="\t")')
  printf '%s\t%s\t%s\n' "$d" "$line" "$f" | tee -a "$out"
done
rm -f "$run/samples.npy"
