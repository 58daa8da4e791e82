"""TransGAN for Blender: generate images, sprite sheets and latent walks from a
libtransgan checkpoint into bpy.data.images.

Installed from the zip that `make blender-addon` builds (build/transgan_blender.zip):
Edit > Preferences > Add-ons > Install..., then enable "Image: TransGAN". The panel
is in the Image Editor's sidebar (N), tab "TransGAN".

The zip carries the Python bindings (this package's `transgan` folder) and, when it
was built next to one, the shared library (`lib/libtransgan.so.0`); that library
needs the system's oneDNN and cJSON (Debian: `apt install libdnnl2 libcjson1`).
Without a bundled library the system's installed libtransgan.so.0 is used.
"""
import math
import os

bl_info = {
    "name": "TransGAN",
    "author": "libtransgan",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "Image Editor > Sidebar > TransGAN",
    "description": "Generate images, sprite sheets and latent walks with a TransGAN checkpoint",
    "category": "Image",
}

_HERE = os.path.dirname(os.path.abspath(__file__))
_BUNDLED = os.path.join(_HERE, "lib", "libtransgan.so.0")


def _transgan():
    """The bundled bindings, loading the bundled library when the zip has one.

    TRANSGAN_LIBRARY is the bindings' documented way to name a library file;
    a value the user set is kept."""
    if os.path.isfile(_BUNDLED):
        os.environ.setdefault("TRANSGAN_LIBRARY", _BUNDLED)
    from . import transgan
    return transgan


# --------------------------------------------------------------- pure helpers
# (no bpy: the tests call them directly too)

def slerp(a, b, t):
    """Spherical interpolation between latent vectors a and b (numpy, 1-D)."""
    import numpy as np
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    cos = float(np.dot(a, b) / max(na * nb, 1e-12))
    omega = math.acos(max(-1.0, min(1.0, cos)))
    if omega < 1e-6:
        return (1 - t) * a + t * b
    s = math.sin(omega)
    return (math.sin((1 - t) * omega) / s) * a + (math.sin(t * omega) / s) * b


def walk_latents(model, seed, frames, keys):
    """`frames` latents on a closed loop through `keys` key latents drawn from seed."""
    import numpy as np
    kz = model.latent(keys, seed=seed)
    out = np.empty((frames, kz.shape[1]), dtype=np.float32)
    for f in range(frames):
        pos = f * keys / frames
        i = int(pos)
        out[f] = slerp(kz[i % keys], kz[(i + 1) % keys], pos - i)
    return out


def sheet_pixels(rgba, columns):
    """n RGBA8 sprites [n, S, S, 4] as one sheet in Blender's layout: float RGBA,
    rows bottom to top, `columns` sprites per row (top-left is sprite 0)."""
    import numpy as np
    n, S = rgba.shape[0], rgba.shape[1]
    columns = max(1, min(columns, n))
    rows = (n + columns - 1) // columns
    sheet = np.zeros((rows * S, columns * S, 4), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, columns)
        sheet[r * S:(r + 1) * S, c * S:(c + 1) * S] = rgba[i] / 255.0
    return sheet[::-1].copy(), columns * S, rows * S


ANY_CLASS = "ANY"


def class_items(model):
    """The choices of the class dropdown for a model: "any" (each latent picks
    its class) and, for a class-conditional model, one entry per class, named
    from the checkpoint's class names (identifier: the class number)."""
    items = [(ANY_CLASS, "Any class", "Each latent picks its own class")]
    if model is None or not model.num_classes:
        return items
    names = model.class_names or ["class %d" % k for k in range(model.num_classes)]
    return items + [(str(k), n, "Generate class %d (%s)" % (k, n)) for k, n in enumerate(names)]


def class_label(choice):
    """The labels= argument of the bindings for a dropdown choice."""
    return None if choice in ("", ANY_CLASS) else int(choice)


_cache = {}


def load_model(path):
    """The model of a checkpoint (or descriptor), kept while the file is unchanged."""
    transgan = _transgan()
    path = os.path.abspath(path)
    key = (path, os.path.getmtime(path))
    m = _cache.get(path)
    if m is None or m[0] != key:
        model = transgan.Model(path) if path.endswith(".json") else transgan.Model.load(path)
        _cache[path] = (key, model)
        return model
    return m[1]


def store_image(bpy, name, pixels, width, height):
    """Create or replace bpy.data.images[name] with float RGBA pixels."""
    img = bpy.data.images.get(name)
    if img is not None and (img.size[0] != width or img.size[1] != height):
        bpy.data.images.remove(img)
        img = None
    if img is None:
        img = bpy.data.images.new(name, width, height, alpha=True)
    img.pixels.foreach_set(pixels.ravel())
    img.update()
    img.pack()  # keep it in the .blend: it exists nowhere else
    return img


# --------------------------------------------------------------------- Blender

try:
    import bpy
    from bpy.props import (BoolProperty, EnumProperty, IntProperty, PointerProperty,
                           StringProperty)
except ImportError:  # imported outside Blender (tests of the helpers)
    bpy = None

if bpy is not None:
    class TransGANSettings(bpy.types.PropertyGroup):
        checkpoint: StringProperty(name="Checkpoint", subtype="FILE_PATH",
                                   description="A libtransgan .safetensors checkpoint "
                                               "(or a .json descriptor: untrained)")
        mode: EnumProperty(name="Mode", items=[
            ("SHEET", "Sprite sheet", "count sprites in one image, `columns` per row"),
            ("WALK", "Latent walk", "one image per frame along a loop through key latents"),
        ], default="SHEET")
        seed: IntProperty(name="Seed", default=1, min=0)
        count: IntProperty(name="Count", default=16, min=1, max=4096)
        columns: IntProperty(name="Columns", default=4, min=1, max=256)
        frames: IntProperty(name="Frames", default=24, min=2, max=10000)
        keys: IntProperty(name="Key latents", default=4, min=2, max=64)
        use_ema: BoolProperty(name="EMA generator", default=True,
                              description="Sample the EMA generator (the trained one)")
        image_name: StringProperty(name="Image", default="TransGAN")

    # Blender keeps only pointers into the strings of dynamic enum items: the
    # list must outlive the call (a module-level reference)
    _class_items = [class_items(None)]

    def _class_enum(self, context):
        try:
            path = bpy.path.abspath(self.checkpoint)
            model = load_model(path) if self.checkpoint and os.path.isfile(path) else None
            _class_items[0] = class_items(model)
        except Exception:  # an unreadable file: the operator reports it
            _class_items[0] = class_items(None)
        return _class_items[0]

    TransGANSettings.__annotations__["label"] = EnumProperty(
        name="Class", items=_class_enum,
        description="Class-conditional checkpoints: the class of every image")

    class TRANSGAN_OT_generate(bpy.types.Operator):
        """Generate sprites from the TransGAN checkpoint into bpy.data.images"""
        bl_idname = "transgan.generate"
        bl_label = "Generate"
        bl_options = {"REGISTER", "UNDO"}

        def execute(self, context):
            s = context.scene.transgan
            path = bpy.path.abspath(s.checkpoint)
            if not s.checkpoint or not os.path.isfile(path):
                self.report({"ERROR"}, "TransGAN: choose a checkpoint file first (%r)" % path)
                return {"CANCELLED"}
            try:
                model = load_model(path)
                if s.mode == "SHEET":
                    y = class_label(s.label) if model.num_classes else None
                    px = model.generate_uint8(n=s.count, seed=s.seed, ema=s.use_ema,
                                              format="rgba", labels=y)
                    sheet, w, h = sheet_pixels(px, s.columns)
                    img = store_image(bpy, s.image_name, sheet, w, h)
                    self.report({"INFO"}, "TransGAN: %d sprites -> %s" % (s.count, img.name))
                else:
                    z = walk_latents(model, s.seed, s.frames, s.keys)
                    y = class_label(s.label) if model.num_classes else None
                    px = model.generate_uint8(z=z, ema=s.use_ema, format="rgba", labels=y)
                    for f in range(s.frames):
                        sheet, w, h = sheet_pixels(px[f:f + 1], 1)
                        store_image(bpy, "%s.%04d" % (s.image_name, f), sheet, w, h)
                    self.report({"INFO"}, "TransGAN: %d walk frames -> %s.0000..." %
                                (s.frames, s.image_name))
            except Exception as e:  # the library's message, not a traceback
                self.report({"ERROR"}, "TransGAN: %s" % e)
                return {"CANCELLED"}
            return {"FINISHED"}

    class TRANSGAN_PT_panel(bpy.types.Panel):
        bl_label = "TransGAN"
        bl_space_type = "IMAGE_EDITOR"
        bl_region_type = "UI"
        bl_category = "TransGAN"

        def draw(self, context):
            s = context.scene.transgan
            col = self.layout.column()
            col.prop(s, "checkpoint")
            col.prop(s, "mode")
            col.prop(s, "seed")
            if s.mode == "SHEET":
                col.prop(s, "count")
                col.prop(s, "columns")
            else:
                col.prop(s, "frames")
                col.prop(s, "keys")
            col.prop(s, "use_ema")
            path = bpy.path.abspath(s.checkpoint)
            try:
                conditional = (s.checkpoint and os.path.isfile(path)
                               and load_model(path).num_classes > 0)
            except Exception:
                conditional = False
            if conditional:  # the class dropdown, only where there are classes
                col.prop(s, "label")
            col.prop(s, "image_name")
            col.operator("transgan.generate")

    _classes = (TransGANSettings, TRANSGAN_OT_generate, TRANSGAN_PT_panel)

    def register():
        for c in _classes:
            bpy.utils.register_class(c)
        bpy.types.Scene.transgan = PointerProperty(type=TransGANSettings)

    def unregister():
        del bpy.types.Scene.transgan
        for c in reversed(_classes):
            bpy.utils.unregister_class(c)
        _cache.clear()
