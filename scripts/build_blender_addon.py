#!/usr/bin/python3
"""Build the Blender add-on zip: bindings/blender/transgan_blender + the Python
bindings (bindings/python/transgan) as its `transgan` subpackage + optionally the
shared library as lib/libtransgan.so.0.

  build_blender_addon.py OUT.zip [--lib build/libtransgan.so.0]
"""
import argparse
import os
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def add_tree(z, src, arc):
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for f in sorted(filenames):
            if f.endswith(".py"):
                p = os.path.join(dirpath, f)
                z.write(p, os.path.join(arc, os.path.relpath(p, src)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--lib", help="shared library to bundle (the real file, not a link)")
    a = ap.parse_args()
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with zipfile.ZipFile(a.out, "w", zipfile.ZIP_DEFLATED) as z:
        add_tree(z, os.path.join(ROOT, "bindings", "blender", "transgan_blender"),
                 "transgan_blender")
        add_tree(z, os.path.join(ROOT, "bindings", "python", "transgan"),
                 "transgan_blender/transgan")
        if a.lib:
            z.write(os.path.realpath(a.lib), "transgan_blender/lib/libtransgan.so.0")
    print("blender add-on: %s%s" % (a.out, " (library bundled)" if a.lib else ""))


if __name__ == "__main__":
    main()
