#!/bin/sh
# make demo: sample a small pretrained model shipped in the repository, walk its
# latent space, then train a fresh model live for a minute and a half.
# Pictures go to demo-out/.
set -eu
B=${B:-build}
out=demo-out
ckpt=models/pretrained/fmnist-convd.safetensors
cond=models/pretrained/fmnist-cond.safetensors
emoji=models/pretrained/emoji-32.safetensors
# step 4 trains on Fashion-MNIST: say what is missing before steps 1-3 run
fmnist=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
if [ ! -r "$fmnist" ]; then
  echo "demo: cannot read $fmnist: Fashion-MNIST comes with the Debian package" \
       "dataset-fashion-mnist (apt-get install dataset-fashion-mnist, or scripts/install-deps.sh demo)" >&2
  exit 1
fi
for p in embed generate interpolate train; do
  [ -x "$B/examples/$p" ] || { echo "demo: $B/examples/$p is missing: run make examples" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out"

echo "== 1. A sprite from the pretrained model ($ckpt), drawn in the terminal"
"$B/examples/embed" "$ckpt" 3

echo
echo "== 2. 64 samples of the pretrained model"
"$B/examples/generate" "$ckpt" --n 64 --seed 1 --png "$out/pretrained-samples.png"

echo
echo "== 2b. The class-conditional model ($cond): one row of 8 per class, top to bottom"
"$B/examples/generate" "$cond" --class rows --seed 1 --png "$out/conditional-rows.png"

echo
echo "== 2c. RGBA sprites from the emoji model ($emoji), transparent background"
"$B/examples/generate" "$emoji" --n 64 --seed 1 --png "$out/emoji-samples.png"

echo
echo "== 3. A walk through its latent space (24 frames, for an animation tool)"
"$B/examples/interpolate" "$ckpt" --keys 4 --frames 24 --loop 1 --scale 4 --out "$out/walk" > /dev/null

echo
echo "== 4. Live training: a fresh fmnist-demo model on Fashion-MNIST (the G/D loop)"
"$B/examples/train" --model models/fmnist-demo.json --data fmnist --steps ${DEMO_STEPS:-400} \
    --every 200 --out "$out/live"

echo
echo "Pictures:"
echo "  $out/pretrained-samples.png   samples of the pretrained model (trained as models/pretrained/README.md says)"
echo "  $out/conditional-rows.png  the conditional model: rows t-shirt, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, ankle-boot"
echo "  $out/emoji-samples.png       64 RGBA sprites of the emoji model (32x32, alpha kept)"
echo "  $out/walk/frame_*.png         a looping latent walk"
echo "  $out/live/samples_*.png       the live model's samples as it trains (compare with the pretrained ones)"
