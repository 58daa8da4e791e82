"""The add-on inside a real, headless Blender (`make blender-test`):

  blender -b --factory-startup --python-exit-code 1 --python blender_test.py -- ADDON.zip CHECKPOINT

Installs the zip the way a user does (into BLENDER_USER_SCRIPTS, which the make
target points at a temporary folder), enables it, runs the operator for a
sprite sheet and a latent walk, and checks the images it made against the
bindings' own samples. Prints "blender: N passed, M failed".
"""
import sys

import bpy
import numpy as np

args = sys.argv[sys.argv.index("--") + 1:]
zip_path, ckpt = args[:2]
cond_ckpt = args[2] if len(args) > 2 else None   # a class-conditional checkpoint
passed = failed = 0


def expect(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAILED:", what)


bpy.ops.preferences.addon_install(filepath=zip_path, overwrite=True)
bpy.ops.preferences.addon_enable(module="transgan_blender")
import transgan_blender as tb  # noqa: E402  (importable once installed)

expect(hasattr(bpy.types.Scene, "transgan"), "add-on registered its settings")
expect(hasattr(bpy.ops.transgan, "generate"), "add-on registered its operator")
s = bpy.context.scene.transgan

# a sprite sheet: 6 sprites, 4 per row -> 2 rows
s.checkpoint, s.mode, s.seed, s.count, s.columns, s.image_name = ckpt, "SHEET", 3, 6, 4, "Sheet"
expect(bpy.ops.transgan.generate() == {"FINISHED"}, "sheet operator finished")
img = bpy.data.images.get("Sheet")
expect(img is not None, "image Sheet exists")
model = tb.load_model(ckpt)
S = model.image_size
expect(tuple(img.size) == (4 * S, 2 * S), "sheet size %s" % (tuple(img.size),))
px = np.empty(img.size[0] * img.size[1] * 4, dtype=np.float32)
img.pixels.foreach_get(px)
px = px.reshape(img.size[1], img.size[0], 4)[::-1]  # top row first
want = model.generate_uint8(n=6, seed=3, format="rgba").astype(np.float32) / 255
expect(np.abs(px[:S, :S] - want[0]).max() < 1e-6, "sprite 0 at the top left")
expect(np.abs(px[S:2 * S, S:2 * S] - want[5]).max() < 1e-6, "sprite 5 at row 1, column 1")
expect(np.all(px[S:, 2 * S:] == 0), "the empty cells stay transparent")
expect(px[:S, :S, :3].std() > 0.01, "sprite 0 is not flat")
expect(img.packed_file is not None, "the sheet is packed into the .blend")

# a latent walk: one image per frame; neighbours are close, the loop moves
s.mode, s.frames, s.keys, s.image_name = "WALK", 8, 2, "Walk"
expect(bpy.ops.transgan.generate() == {"FINISHED"}, "walk operator finished")
frames = [bpy.data.images.get("Walk.%04d" % f) for f in range(8)]
expect(all(f is not None and tuple(f.size) == (S, S) for f in frames), "8 walk frames of SxS")


def pixels(im):
    a = np.empty(S * S * 4, dtype=np.float32)
    im.pixels.foreach_get(a)
    return a


d01 = np.abs(pixels(frames[0]) - pixels(frames[1])).mean()
d04 = np.abs(pixels(frames[0]) - pixels(frames[4])).mean()
expect(0 < d01 < d04, "walk: next frame closer than the far side (%g, %g)" % (d01, d04))

# the same again replaces the images in place instead of adding new ones
n_images = len(bpy.data.images)
expect(bpy.ops.transgan.generate() == {"FINISHED"}, "walk again finished")
expect(len(bpy.data.images) == n_images, "images replaced, not duplicated")

# a class-conditional checkpoint: the dropdown lists its classes, and a sheet
# of one class is the bindings' samples of that class
if cond_ckpt:
    cm = tb.load_model(cond_ckpt)
    items = tb.class_items(cm)
    expect([i[1] for i in items[1:]] == cm.class_names and items[0][0] == tb.ANY_CLASS,
           "dropdown items %s" % (items,))
    expect(tb.class_items(model) == items[:1], "an unconditional model offers no classes")
    s.checkpoint, s.mode, s.count, s.columns, s.image_name = cond_ckpt, "SHEET", 2, 2, "Cond"
    s.label = "2"
    expect(s.label == "2", "the class dropdown takes a class")
    expect(bpy.ops.transgan.generate() == {"FINISHED"}, "conditional sheet finished")
    ci = bpy.data.images.get("Cond")
    S2 = cm.image_size
    got = np.empty(ci.size[0] * ci.size[1] * 4, dtype=np.float32)
    ci.pixels.foreach_get(got)
    got = got.reshape(ci.size[1], ci.size[0], 4)[::-1]
    want = cm.generate_uint8(n=2, seed=s.seed, format="rgba", labels=2).astype(np.float32) / 255
    expect(np.abs(got[:S2, :S2] - want[0]).max() < 1e-6, "sheet of class 2 = its samples")
    other = cm.generate_uint8(n=2, seed=s.seed, format="rgba", labels=0).astype(np.float32) / 255
    expect(np.abs(got[:S2, :S2] - other[0]).max() > 1e-3, "the class changes the sprite")
    s.checkpoint = ckpt

# a missing file is reported, not a traceback
s.checkpoint = "/nonexistent/model.safetensors"
try:
    r = bpy.ops.transgan.generate()
    expect(r == {"CANCELLED"}, "missing checkpoint cancels")
except RuntimeError as e:  # background mode raises ERROR reports
    expect("choose a checkpoint" in str(e), "missing checkpoint message: %s" % e)

bpy.ops.preferences.addon_disable(module="transgan_blender")
expect(not hasattr(bpy.types.Scene, "transgan"), "add-on unregistered")
print("blender: %d passed, %d failed" % (passed, failed))
if failed:
    raise SystemExit(1)
