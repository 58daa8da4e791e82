#!/bin/sh
# ABI checks: only tg_ symbols are exported, the soname is right, and a program
# built against the *installed* header and pkg-config file links and runs.
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
#include <string.h>
#include <transgan.h>
int main(void) {
    if (tg_version() != TG_VERSION_NUMBER) return 1;
    if (strcmp(tg_version_string(), TG_VERSION_STRING) != 0) return 2;
    tg_model *m = (tg_model *)1;
    if (tg_model_create(NULL, 1, &m) != TG_ERR_INVALID_ARGUMENT || m != NULL) return 3;
    if (strlen(tg_last_error()) == 0) return 4;
    printf("linked libtransgan %s\n", tg_version_string());
    return 0;
}
C
cflags=$(PKG_CONFIG_SYSROOT_DIR="$tmp/root" PKG_CONFIG_PATH="$pc" pkg-config --cflags transgan)
libs=$(PKG_CONFIG_SYSROOT_DIR="$tmp/root" PKG_CONFIG_PATH="$pc" pkg-config --libs transgan)
if cc -std=c11 -Wall -Werror $cflags "$tmp/prog.c" -o "$tmp/prog" $libs &&
   LD_LIBRARY_PATH="$tmp/root/usr/local/lib" "$tmp/prog"; then
  ok "program built with pkg-config against the installed library runs"
else
  bad "program built with pkg-config against the installed library"
fi
[ -L "$tmp/root/usr/local/lib/$SONAME" ] && ok "installed $SONAME link" || bad "no $SONAME link installed"
[ -f "$tmp/root/usr/local/share/doc/libtransgan/ABI.md" ] && ok "docs installed" || bad "docs not installed"
make -s uninstall DESTDIR="$tmp/root" PREFIX=/usr/local >/dev/null
[ ! -e "$tmp/root/usr/local/include/transgan.h" ] && ok "uninstall removes the header" || bad "uninstall left the header"

echo "abi: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
