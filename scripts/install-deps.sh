#!/bin/sh
# Install the Debian packages libtransgan needs, when they are missing.
# Usage: scripts/install-deps.sh [build|test|demo]   (build is the default)
set -eu
need="libdnnl-dev libcjson-dev pkg-config gcc make"
case "${1:-build}" in
  # the examples read images with zlib and stb (the Python ones with PIL); make test
  # trains on Fashion-MNIST
  test) need="$need g++ check python3 python3-numpy python3-pil python3-pytest python3-pip python3-torch valgrind"
        need="$need libstb-dev zlib1g-dev dataset-fashion-mnist" ;;
  blender) need="$need blender python3-numpy" ;;
  demo) need="$need python3 python3-numpy libstb-dev zlib1g-dev" ;;
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
