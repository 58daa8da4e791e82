#!/bin/sh
# Install the Debian packages libtransgan needs, when they are missing.
# Usage: scripts/install-deps.sh [build|test|demo|blender|bench]   (build is the default)
set -eu
# libc6-dev: gcc only recommends it, and recommends are not installed below
need="libdnnl-dev libcjson-dev pkg-config gcc libc6-dev make"
# the C examples read and write images with zlib and stb; the demo's live
# training and make test's example runs read Fashion-MNIST
examples="libstb-dev zlib1g-dev dataset-fashion-mnist"
case "${1:-build}" in
  build) ;;
  # python3-venv: make test installs the Python bindings into a fresh venv
  test) need="$need $examples g++ check python3 python3-numpy python3-pil python3-pytest python3-pip"
        need="$need python3-venv python3-torch valgrind"
        # make mpi-test: examples/train_mpi.c under mpirun
        need="$need libopenmpi-dev openmpi-bin"
        # make fuzz-test: clang's libFuzzer runtime and the OpenMP of clang
        need="$need clang libclang-rt-14-dev libomp-14-dev" ;;
  blender) need="$need blender python3-numpy" ;;
  demo) need="$need $examples" ;;
  # make bench-ort: the ONNX export (torch, onnx), the library check (numpy), node
  # and npm for onnxruntime-node
  # (npm only when missing: NodeSource's nodejs carries its own and conflicts with Debian's)
  bench) need="$need python3 python3-numpy python3-torch python3-onnx nodejs"
         command -v npm >/dev/null 2>&1 || need="$need npm" ;;
  *) echo "usage: scripts/install-deps.sh [build|test|demo|blender|bench]" >&2; exit 2 ;;
esac
missing=""
for p in $need; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "libtransgan: installing missing Debian packages:$missing"
if [ "$(id -u)" = 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "libtransgan: cannot install$missing: not root and no password-less sudo." >&2
  echo "Ask an administrator to run: apt-get install$missing" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1; then
  $SUDO apt-get update -q >/dev/null || { echo "libtransgan: apt-get update failed" >&2; exit 1; }
  $SUDO apt-get install -y -q --no-install-recommends $missing || {
    echo "libtransgan: apt-get install$missing failed" >&2; exit 1; }
fi
