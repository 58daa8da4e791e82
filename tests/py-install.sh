#!/bin/sh
# The Python bindings as a user installs them: the library installed into a
# DESTDIR, the bindings pip-installed (offline) into a fresh venv that sees
# Debian's numpy, then imported from a folder outside the repository. The
# library must come through the dynamic loader (LD_LIBRARY_PATH here, as the
# ldconfig cache would give it after make install): not from the repository's
# build/ and not through TRANSGAN_LIBRARY.
# Usage: tests/py-install.sh BUILD_DIR      (from the repository root)
set -eu
B=$1
repo=$(pwd)
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make -s install B="$B" DESTDIR="$tmp/root" PREFIX=/usr/local >/dev/null
lib="$tmp/root/usr/local/lib"

/usr/bin/python3 -m venv --system-site-packages "$tmp/venv"
py="$tmp/venv/bin/python"
if PIP_NO_INPUT=1 PIP_CONFIG_FILE=/dev/null "$py" -m pip install --no-index --no-build-isolation \
     --no-cache-dir --disable-pip-version-check --quiet "$repo/bindings/python" > "$tmp/pip.txt" 2>&1; then
  ok "pip install --no-index --no-build-isolation ./bindings/python into a fresh venv"
else
  bad "pip install into a venv: $(cat "$tmp/pip.txt")"
fi

mkdir "$tmp/work"
cat > "$tmp/work/check.py" <<'PY'
import os, sys
import numpy as np
from PIL import Image
import transgan

venv, libdir, repo = sys.argv[1:4]
assert transgan.__file__.startswith(venv + os.sep), transgan.__file__
assert transgan.library_source == "system", transgan.library_source
# the file the dynamic loader mapped is the installed one
with open("/proc/self/maps") as f:
    mapped = {line.split()[-1] for line in f if "libtransgan.so" in line}
assert mapped and all(p.startswith(libdir + os.sep) for p in mapped), mapped
with transgan.Model.load(os.path.join(repo, "models/pretrained/fmnist-mid.safetensors")) as m:
    px = m.generate_uint8(n=4, seed=1)
    assert px.shape == (4, m.image_size, m.image_size) and px.dtype == np.uint8
    Image.fromarray(px[0]).save("sample.png")
    assert m.discriminate(m.generate(n=2, seed=1)).shape == (2,)
print("imported %s from %s (%s), sampled %s" % (transgan.version(), sorted(mapped)[0],
                                                 transgan.library_source, px.shape))
PY
if (cd "$tmp/work" && env -u TRANSGAN_LIBRARY -u PYTHONPATH LD_LIBRARY_PATH="$lib" OMP_NUM_THREADS=2 \
      "$py" check.py "$tmp/venv" "$lib" "$repo" > "$tmp/out.txt" 2>&1) && [ -s "$tmp/work/sample.png" ]; then
  ok "venv: $(cat "$tmp/out.txt")"
else
  bad "venv import and sampling with LD_LIBRARY_PATH=$lib: $(cat "$tmp/out.txt")"
fi

# After make install but before ldconfig, the loader's cache does not know
# the library: the bindings then look in the folders /etc/ld.so.conf lists,
# as ldconfig would. Simulated: dlopen of the bare soname fails, and the
# configuration read in place of /etc/ld.so.conf lists the DESTDIR's lib.
printf '# stand-in for /etc/ld.so.conf\ninclude %s/ld.so.conf.d/*.conf\n' "$tmp" > "$tmp/ld.so.conf"
mkdir "$tmp/ld.so.conf.d"
printf '/nonexistent/lib\n%s\n' "$lib" > "$tmp/ld.so.conf.d/local.conf"
cat > "$tmp/work/stale.py" <<'PY'
import builtins, ctypes, os, sys
conf, libdir = sys.argv[1:3]
real_cdll, real_open = ctypes.CDLL, builtins.open

class StaleCache(real_cdll):
    def __init__(self, name, *args, **kw):
        if name == "libtransgan.so.0":
            raise OSError("libtransgan.so.0: cannot open shared object file (simulated)")
        real_cdll.__init__(self, name, *args, **kw)

def conf_open(path, *args, **kw):
    return real_open(conf if path == "/etc/ld.so.conf" else path, *args, **kw)

ctypes.CDLL, builtins.open = StaleCache, conf_open
import transgan
assert transgan.library_source == "system", transgan.library_source
assert transgan.library_path == os.path.join(libdir, "libtransgan.so.0"), transgan.library_path
print(transgan.library_path)
PY
if (cd "$tmp/work" && env -u TRANSGAN_LIBRARY -u PYTHONPATH -u LD_LIBRARY_PATH \
      "$py" stale.py "$tmp/ld.so.conf" "$lib" > "$tmp/out.txt" 2>&1); then
  ok "stale loader cache: found through the ld.so.conf folders: $(cat "$tmp/out.txt")"
else
  bad "stale loader cache: $(cat "$tmp/out.txt")"
fi

# Without LD_LIBRARY_PATH the installed copy must not reach for the
# repository's build/: either the system has the library (make install) or
# the import fails, saying what to do.
if (cd "$tmp/work" && env -u TRANSGAN_LIBRARY -u PYTHONPATH -u LD_LIBRARY_PATH "$py" -c \
      'import transgan; print(transgan.library_path)' > "$tmp/out.txt" 2>&1); then
  case "$(cat "$tmp/out.txt")" in
    "$repo"/*) bad "the venv copy loaded the repository's $(cat "$tmp/out.txt")" ;;
    *) ok "without LD_LIBRARY_PATH: the system's $(cat "$tmp/out.txt")" ;;
  esac
elif grep -q "libtransgan not found.*make install" "$tmp/out.txt"; then
  ok "without LD_LIBRARY_PATH (nothing installed): ImportError saying how to install"
elif grep -q "ImportError: transgan: .*libtransgan.so.0 \(lacks\|is version\)" "$tmp/out.txt"; then
  # an older libtransgan installed on the system: refused by name, not a crash
  ok "without LD_LIBRARY_PATH: the system's older library refused: $(tail -1 "$tmp/out.txt")"
else
  bad "without LD_LIBRARY_PATH: $(cat "$tmp/out.txt")"
fi

echo "py-install: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
