#!/bin/sh
# The library's layers (docs/ARCHITECTURE.md), top to bottom:
#   api/ -> train/, io/ -> models/ -> nn/ -> ops/ -> core/
# A file may include its own folder and any lower layer, never a higher one
# nor its sibling (train/ and io/ need nothing of each other). Every TG_API
# function is defined in api/ and nowhere else.
#   sh tests/layers.sh [ROOT]     (ROOT: the checkout, default .)
# Prints every violation and a closing "layers: N passed, M failed"; exits 1
# on any failure.
root=${1:-.}
cd "$root" || exit 2

rank() {
    case $1 in
    core) echo 0 ;; ops) echo 1 ;; nn) echo 2 ;; models) echo 3 ;;
    train | io) echo 4 ;; api) echo 5 ;; *) echo -1 ;;
    esac
}

pass=0
fail=0
bad() { fail=$((fail + 1)); echo "  FAIL $*"; }

# Files directly under lib/ would belong to no layer.
for f in lib/*.c lib/*.h; do
    [ -e "$f" ] && bad "$f: every source file belongs to a layer folder"
done

for f in lib/*/*.c lib/*/*.h lib/*/*.inc; do
    [ -e "$f" ] || continue
    dir=${f%/*}
    from=${dir#lib/}
    rf=$(rank "$from")
    if [ "$rf" -lt 0 ]; then
        bad "$f: folder lib/$from/ has no place in tests/layers.sh's layer order"
        continue
    fi
    # quoted includes only; <...> are system and library headers
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
        if [ "$inc" = transgan.h ]; then # the public header, from -Iinclude
            pass=$((pass + 1))
            continue
        fi
        target=$(realpath -m --relative-to=. "$dir/$inc")
        case $target in
        lib/*/*) to=${target#lib/}; to=${to%%/*} ;;
        *) bad "$f: #include \"$inc\" leaves lib/'s layer folders"; continue ;;
        esac
        if [ ! -e "$target" ]; then
            bad "$f: #include \"$inc\" names no file"
            continue
        fi
        rt=$(rank "$to")
        if [ "$to" = "$from" ] || { [ "$rt" -ge 0 ] && [ "$rt" -lt "$rf" ]; }; then
            pass=$((pass + 1))
        else
            bad "$f: #include \"$inc\" goes from $from/ to $to/ (up or sideways)"
        fi
    done
done

# The public surface: TG_API definitions live in api/ only.
for f in lib/*/*.c; do
    case $f in lib/api/*) continue ;; esac
    if grep -n '^TG_API' "$f" > /dev/null; then
        bad "$f: defines a public TG_API function outside lib/api/: $(grep -n '^TG_API' "$f" | head -1)"
    else
        pass=$((pass + 1))
    fi
done

echo "layers: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
