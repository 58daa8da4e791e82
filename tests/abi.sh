#!/bin/sh
# ABI checks: only tg_ symbols are exported, the soname is right, and a program
# built against the *installed* header and pkg-config file links and runs,
# against the shared library and statically (pkg-config --static).
# Usage: tests/abi.sh BUILD_DIR VERSION SONAME
set -eu
B=$1 VERSION=$2 SONAME=$3
lib=$B/libtransgan.so.$VERSION
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }

extra=$(nm -D --defined-only "$lib" | awk 'NF == 3 {print $3}' | sed 's/@.*//' | grep -v '^tg_' | grep -v '^TRANSGAN_' || true)
[ -z "$extra" ] && ok "only tg_ symbols exported" || bad "non-tg_ exports: $extra"
n=$(nm -D --defined-only "$lib" | awk 'NF == 3 {print $3}' | grep -c '^tg_' || true)
[ "$n" -gt 0 ] && ok "$n tg_ symbols exported" || bad "no tg_ symbols exported"

so=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')
[ "$so" = "$SONAME" ] && ok "soname $so" || bad "soname is '$so', want $SONAME"

# every symbol the header declares is exported, and nothing else
declared=$(sed -n 's/^TG_API [^(]*[ *]\(tg_[a-z0-9_]*\)(.*/\1/p' include/transgan.h | sort)
exported=$(nm -D --defined-only "$lib" | awk 'NF == 3 {print $3}' | sed 's/@.*//' | grep '^tg_' | sort)
[ "$declared" = "$exported" ] && ok "exports match the header" ||
  bad "exports differ from the header: $(echo "$declared" "$exported" | tr ' ' '\n' | sort | uniq -u | tr '\n' ' ')"

# install into a temporary DESTDIR and build a program outside the tree with pkg-config
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make -s install DESTDIR="$tmp/root" PREFIX=/usr/local >/dev/null
pc="$tmp/root/usr/local/lib/pkgconfig"
cat > "$tmp/prog.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <transgan.h>
/* checks the version and error contract; with a checkpoint argument also
 * samples two images (oneDNN and OpenMP at work) and prints a checksum */
int main(int argc, char **argv) {
    if (tg_version() != TG_VERSION_NUMBER) return 1;
    if (strcmp(tg_version_string(), TG_VERSION_STRING) != 0) return 2;
    tg_model *m = (tg_model *)1;
    if (tg_model_create(NULL, 1, &m) != TG_ERR_INVALID_ARGUMENT || m != NULL) return 3;
    if (strlen(tg_last_error()) == 0) return 4;
    printf("linked libtransgan %s\n", tg_version_string());
    if (argc < 2) return 0;
    int64_t L, S, C;
    if (tg_model_load(argv[1], &m) != TG_OK || tg_model_info(m, TG_INFO_LATENT_DIM, &L) != TG_OK ||
        tg_model_info(m, TG_INFO_IMAGE_SIZE, &S) != TG_OK ||
        tg_model_info(m, TG_INFO_CHANNELS, &C) != TG_OK) {
        fprintf(stderr, "%s\n", tg_last_error());
        return 5;
    }
    size_t nz = 2 * (size_t)L, nx = 2 * (size_t)(C * S * S);
    float *z = malloc(nz * sizeof *z), *x = malloc(nx * sizeof *x);
    if (!z || !x || tg_latent_sample(m, 7, 2, z, nz) != TG_OK ||
        tg_generate(m, z, 2, TG_GEN_EMA, x, nx) != TG_OK) {
        fprintf(stderr, "%s\n", tg_last_error());
        return 6;
    }
    double sum = 0;
    for (size_t i = 0; i < nx; i++)
        sum += x[i] * (double)(i % 7 + 1);
    printf("checksum %.9g\n", sum);
    free(z), free(x);
    tg_model_destroy(m);
    return 0;
}
C
ckpt=tests/fixtures/tiny-ln.safetensors
cflags=$(PKG_CONFIG_SYSROOT_DIR="$tmp/root" PKG_CONFIG_PATH="$pc" pkg-config --cflags transgan)
libs=$(PKG_CONFIG_SYSROOT_DIR="$tmp/root" PKG_CONFIG_PATH="$pc" pkg-config --libs transgan)
if cc -std=c11 -Wall -Werror $cflags "$tmp/prog.c" -o "$tmp/prog" $libs &&
   LD_LIBRARY_PATH="$tmp/root/usr/local/lib" OMP_NUM_THREADS=1 "$tmp/prog" "$ckpt" > "$tmp/shared.txt"; then
  ok "program built with pkg-config against the installed library runs"
else
  bad "program built with pkg-config against the installed library"
fi

# a static link: only libtransgan.a in the folder, so -ltransgan takes it and
# everything it needs must come from Libs.private (oneDNN, OpenMP, m, pthread)
# and libcjson.pc; the program must then run without LD_LIBRARY_PATH
cp -a "$tmp/root" "$tmp/static"
rm -f "$tmp/static/usr/local/lib/libtransgan.so"*
slibs=$(PKG_CONFIG_SYSROOT_DIR="$tmp/static" PKG_CONFIG_PATH="$tmp/static/usr/local/lib/pkgconfig" \
        pkg-config --static --libs transgan)
if cc -std=c11 -Wall -Werror $cflags "$tmp/prog.c" -o "$tmp/prog-static" $slibs 2> "$tmp/static.err" &&
   OMP_NUM_THREADS=1 "$tmp/prog-static" "$ckpt" > "$tmp/static.txt"; then
  if objdump -p "$tmp/prog-static" | grep -q "NEEDED.*libtransgan"; then
    bad "the static program still needs libtransgan.so"
  elif ! cmp -s "$tmp/shared.txt" "$tmp/static.txt" || ! grep -q "^checksum " "$tmp/static.txt"; then
    bad "static and shared programs sample differently: $(cat "$tmp/static.txt" "$tmp/shared.txt")"
  else
    ok "program linked statically with pkg-config --static ($slibs) runs and samples alike"
  fi
else
  bad "static link with pkg-config --static ($slibs): $(head -5 "$tmp/static.err")"
fi
[ -L "$tmp/root/usr/local/lib/$SONAME" ] && ok "installed $SONAME link" || bad "no $SONAME link installed"
[ -f "$tmp/root/usr/local/share/doc/libtransgan/ABI.md" ] && ok "docs installed" || bad "docs not installed"
make -s uninstall DESTDIR="$tmp/root" PREFIX=/usr/local >/dev/null
[ ! -e "$tmp/root/usr/local/include/transgan.h" ] && ok "uninstall removes the header" || bad "uninstall left the header"

# make install without DESTDIR runs ldconfig (when root): here into a scratch
# PREFIX with a stand-in ldconfig that records its calls and lists nothing
# (so the scratch folder is reported as one the loader does not search)
printf '#!/bin/sh\necho "$*" >> "%s/ldconfig.calls"\n' "$tmp" > "$tmp/ldconfig"
chmod +x "$tmp/ldconfig"
make -s install PREFIX="$tmp/prefix" LDCONFIG="$tmp/ldconfig" > "$tmp/live.txt" 2>&1 || true
if [ "$(id -u)" = 0 ]; then
  if [ "$(cat "$tmp/ldconfig.calls" 2>/dev/null)" = "$(printf '\n-p')" ] &&
     grep -q "$tmp/prefix/lib is not a folder the dynamic loader searches" "$tmp/live.txt"; then
    ok "make install (no DESTDIR, root) runs ldconfig and says when LIBDIR is not searched"
  else
    bad "make install (no DESTDIR, root): ldconfig calls '$(cat "$tmp/ldconfig.calls" 2>/dev/null)'; $(cat "$tmp/live.txt")"
  fi
else
  if [ ! -e "$tmp/ldconfig.calls" ] && grep -q "sudo ldconfig" "$tmp/live.txt"; then
    ok "make install (no DESTDIR, not root) tells to run ldconfig"
  else
    bad "make install (no DESTDIR, not root): $(cat "$tmp/live.txt")"
  fi
fi
make -s uninstall PREFIX="$tmp/prefix" LDCONFIG="$tmp/ldconfig" > /dev/null 2>&1 || true
[ ! -e "$tmp/prefix/lib/$SONAME" ] && ok "uninstall from the live PREFIX" || bad "uninstall left $SONAME"
rm -f "$tmp/ldconfig.calls"
make -s install DESTDIR="$tmp/root2" LDCONFIG="$tmp/ldconfig" > /dev/null
[ ! -e "$tmp/ldconfig.calls" ] && ok "make install with DESTDIR does not run ldconfig" ||
  bad "make install with DESTDIR ran ldconfig"

echo "abi: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
