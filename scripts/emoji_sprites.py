#!/usr/bin/python3
"""Make a folder of 32x32 RGBA emoji sprites for examples/train from the npm
package emoji-datasource-google (Google's Noto emoji as 64x64 PNGs; the images
are under the Apache License 2.0, the package's data under MIT).

  cd /tmp && npm pack emoji-datasource-google        # emoji-datasource-google-<v>.tgz, ~75 MB
  /usr/bin/python3 scripts/emoji_sprites.py /tmp/emoji-datasource-google-*.tgz sprites/
  build/examples/train --model models/emoji-32.json --data sprites/ --out runs/emoji

Reads img/google/64/*.png straight from the tarball. By default keeps one image
per emoji: skin-tone variants (the emoji.json "skin_variations") and the
flags category are left out (flags are rectangles, not icons), which leaves
about 1,600 images. Each is downscaled to --size with Pillow's Lanczos filter
on premultiplied alpha (so transparent pixels' colours do not bleed into the
edges), and fully transparent pixels are written as (0, 0, 0, 0).
"""
import argparse
import io
import json
import os
import sys
import tarfile

import numpy as np
from PIL import Image


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tgz", help="emoji-datasource-google-<version>.tgz (npm pack)")
    ap.add_argument("out", help="output folder of PNGs")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--flags", action="store_true", help="keep the flags category")
    ap.add_argument("--skin-tones", action="store_true", help="keep the skin-tone variants")
    a = ap.parse_args(argv)
    try:
        tar = tarfile.open(a.tgz, "r:gz")
    except (OSError, tarfile.TarError) as e:
        sys.exit("emoji_sprites: cannot read %s: %s" % (a.tgz, e))
    with tar:
        meta = json.load(tar.extractfile("package/emoji.json"))
        keep = {}
        for e in meta:
            if not e.get("has_img_google") or (e["category"] == "Flags" and not a.flags):
                continue
            keep[e["image"]] = e["short_name"]
            if a.skin_tones:
                for v in e.get("skin_variations", {}).values():
                    if v.get("has_img_google"):
                        keep[v["image"]] = e["short_name"]
        os.makedirs(a.out, exist_ok=True)
        n = 0
        for m in tar.getmembers():
            name = os.path.basename(m.name)
            if not m.name.startswith("package/img/google/64/") or name not in keep:
                continue
            im = Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGBA")
            # Pillow resamples RGBA on premultiplied alpha ("RGBa") itself
            im = im.resize((a.size, a.size), Image.LANCZOS)
            px = np.asarray(im).copy()
            px[px[..., 3] == 0] = 0
            Image.fromarray(px, "RGBA").save(os.path.join(a.out, name))
            n += 1
    print("emoji_sprites: wrote %d %dx%d RGBA sprites to %s" % (n, a.size, a.size, a.out))
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
