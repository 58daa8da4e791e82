"""The Model class and the module-level helpers, on top of _lib."""
import ctypes
import json
import operator
import os
import threading

import numpy as np

from ._lib import (PixelFormat, Info, TrainStats, TrainLabels, AllreduceFn, TransGANError,
                   check, check_file, lib, model_p, float_p, uint8_p, int32_p,
                   TG_SEED_FROM_DESCRIPTOR, TG_SAVE_WEIGHTS_ONLY, TG_SAVE_NO_OPTIMIZER,
                   TG_LOAD_SAMPLING_ONLY, TG_GEN_EMA, TG_GEN_RAW)

_FORMAT_NAMES = {
    "gray": PixelFormat.GRAY8, "gray8": PixelFormat.GRAY8,
    "rgb": PixelFormat.RGB8, "rgb8": PixelFormat.RGB8,
    "rgba": PixelFormat.RGBA8, "rgba8": PixelFormat.RGBA8,
}


def version():
    """The running library's version, "MAJOR.MINOR.PATCH" (tg_version_string)."""
    return lib.tg_version_string().decode("ascii")


# ------------------------------------------------------------------ helpers

def _uint64(value, what):
    if isinstance(value, bool):
        raise TypeError("%s must be an integer, not bool" % what)
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError("%s must be an integer, not %s" % (what, type(value).__name__)) from None
    if not 0 <= v < 2**64:
        raise ValueError("%s must be in [0, 2**64) (got %d)" % (what, v))
    return v


def _count(n, what="n"):
    if isinstance(n, bool):
        raise TypeError("%s must be an integer, not bool" % what)
    try:
        v = operator.index(n)
    except TypeError:
        raise TypeError("%s must be an integer, not %s" % (what, type(n).__name__)) from None
    if v < 0:
        raise ValueError("%s must be >= 0 (got %d)" % (what, v))
    return v


def _path(path):
    """A filesystem path (str, bytes or os.PathLike) as bytes for a const char *."""
    try:
        b = os.fsencode(path)
    except TypeError:
        raise TypeError("path must be str, bytes or os.PathLike, not %s"
                        % type(path).__name__) from None
    if b"\0" in b:
        raise ValueError("path contains a NUL character")
    return b


def _float32(x, what):
    """x as a C-contiguous float32 ndarray; TypeError for a non-numeric dtype."""
    a = np.asarray(x)
    if a.dtype.kind not in "iuf":
        raise TypeError("%s must hold real numbers (float or integer dtype), not dtype %s"
                        % (what, a.dtype))
    return np.ascontiguousarray(a, dtype=np.float32)


def _images(x, what):
    """Float images [n, C, S, S] in [-1, 1] as a C-contiguous float32 ndarray.
    Integer arrays are refused (TypeError) rather than guessed at: 8-bit pixels
    (0..255) passed as they are would be read as values far outside [-1, 1]."""
    a = np.asarray(x)
    if a.dtype.kind in "iu":
        raise TypeError("%s must be floating point with values in [-1, 1], not dtype %s; "
                        "convert 8-bit pixels with pixels.astype(np.float32) / 127.5 - 1"
                        % (what, a.dtype))
    if a.dtype.kind != "f":
        raise TypeError("%s must be a floating-point array with values in [-1, 1], not dtype %s"
                        % (what, a.dtype))
    return np.ascontiguousarray(a, dtype=np.float32)


def _check_images(a, C, S, what, n=None):
    """ValueError unless a is [n, C, S, S]; names the usual mistake, pixels
    [n, S, S, C] as generate_uint8 and PIL give them."""
    if a.ndim == 4 and a.shape[1:] == (S, S, C) and a.shape[1:] != (C, S, S):
        raise ValueError("%s must have shape [%s, %d, %d, %d] (channels first), got %s: "
                         "channels-last images convert with images.transpose(0, 3, 1, 2)"
                         % (what, "n" if n is None else n, C, S, S, list(a.shape)))
    if C == 1 and a.ndim == 3 and a.shape[1:] == (S, S):
        raise ValueError("%s must have shape [%s, 1, %d, %d], got %s: grey images need their "
                         "channel axis, images[:, None]"
                         % (what, "n" if n is None else n, S, S, list(a.shape)))
    _check_shape(a, (n, C, S, S), what)


def _pixels_out(n, size, fmt):
    """The output array of a pixel conversion: [n, S, S, bpp], or [n, S, S]
    for grey, the shape PIL's Image.fromarray and matplotlib take for one
    8-bit channel."""
    if fmt == PixelFormat.GRAY8:
        return np.empty((n, size, size), dtype=np.uint8)
    return np.empty((n, size, size, int(fmt)), dtype=np.uint8)


def _check_shape(a, expected, what):
    """expected: a tuple of ints or None (any size). Raise ValueError on mismatch."""
    if a.ndim != len(expected) or any(e is not None and s != e
                                      for s, e in zip(a.shape, expected)):
        want = "[" + ", ".join("n" if e is None else str(e) for e in expected) + "]"
        raise ValueError("%s must have shape %s, got %s" % (what, want, list(a.shape)))


def _fp(a):
    return a.ctypes.data_as(float_p)


def _fp_or_null(a):
    return None if a is None else _fp(a)


def _i32p(a):
    return None if a is None else a.ctypes.data_as(int32_p)


def _pixel_format(fmt, channels):
    if fmt is None:
        return PixelFormat(channels)
    if isinstance(fmt, str):
        try:
            return _FORMAT_NAMES[fmt.lower()]
        except KeyError:
            raise ValueError("unknown pixel format %r (use 'gray', 'rgb' or 'rgba')"
                             % fmt) from None
    if isinstance(fmt, bool):
        raise TypeError("format must be 'gray', 'rgb', 'rgba' or a PixelFormat")
    try:
        return PixelFormat(operator.index(fmt))
    except TypeError:
        raise TypeError("format must be 'gray', 'rgb', 'rgba' or a PixelFormat, not %s"
                        % type(fmt).__name__) from None
    except ValueError:
        raise ValueError("unknown pixel format %r (use 'gray', 'rgb' or 'rgba')" % fmt) from None


def _load_flags(sampling_only):
    if not isinstance(sampling_only, (bool, np.bool_)):
        raise TypeError("sampling_only must be True or False, not %s"
                        % type(sampling_only).__name__)
    return TG_LOAD_SAMPLING_ONLY if sampling_only else 0


def images_to_pixels(images, format=None):
    """Float images [n, C, S, S] (values in [-1, 1], C in 1, 3, 4) to uint8
    pixels (tg_images_to_pixels): [n, S, S, 3] for "rgb", [n, S, S, 4] for
    "rgba" and [n, S, S] for "gray" (what Image.fromarray takes for mode "L").
    format: None (from C: 1 -> "gray", 3 -> "rgb", 4 -> "rgba"), "gray",
    "rgb", "rgba" or a PixelFormat. Integer arrays raise TypeError."""
    a = _images(images, "images")
    if a.ndim != 4:
        raise ValueError("images must have shape [n, C, S, S], got %s" % list(a.shape))
    n, c, h, w = a.shape
    if c not in (1, 3, 4):
        raise ValueError("images must have 1, 3 or 4 channels, got %d" % c)
    if h != w or h < 1:
        raise ValueError("images must be square (S x S, S >= 1), got %d x %d" % (h, w))
    fmt = _pixel_format(format, c)
    out = _pixels_out(n, h, fmt)
    check(lib.tg_images_to_pixels(_fp(a), n, c, h, int(fmt), out.ctypes.data_as(uint8_p),
                                  out.size))
    return out


# -------------------------------------------------------------------- model

class Model:
    """A TransGAN model: generator, discriminator, EMA generator, training state.

    ``Model(descriptor, seed=None)`` creates a model with freshly initialised
    weights. ``descriptor`` is a dict, JSON text (a str/bytes whose first
    non-blank character is ``{``) or the path of a descriptor file (str, bytes
    or os.PathLike). ``seed=None`` initialises from the descriptor's
    training.seed (TG_SEED_FROM_DESCRIPTOR).

    Errors: library failures raise :class:`TransGANError`; wrong shapes and
    values of arguments raise ValueError, wrong types TypeError, before the
    library is called. After :meth:`close` every method and property raises
    ``ValueError("model is closed")``.

    A model may be used from several threads: the calls on one model are
    serialised by a lock (the C library requires that); different models run
    concurrently (ctypes releases the GIL during the calls).
    """

    def __init__(self, descriptor, seed=None):
        self._ptr = None
        self._lock = threading.RLock()
        seed = TG_SEED_FROM_DESCRIPTOR if seed is None else _uint64(seed, "seed")
        out = model_p()
        if isinstance(descriptor, dict):
            text = json.dumps(descriptor).encode("utf-8")
            check(lib.tg_model_create(text, seed, ctypes.byref(out)))
        elif isinstance(descriptor, (str, bytes)) and \
                descriptor.lstrip()[:1] in ("{", b"{"):
            text = descriptor.encode("utf-8") if isinstance(descriptor, str) else descriptor
            if b"\0" in text:
                raise ValueError("descriptor text contains a NUL character")
            check(lib.tg_model_create(text, seed, ctypes.byref(out)))
        elif isinstance(descriptor, (str, bytes, os.PathLike)):
            p = _path(descriptor)
            check_file(lib.tg_model_create_from_file(p, seed, ctypes.byref(out)), p)
        else:
            raise TypeError("descriptor must be a dict, JSON text or a path, not %s"
                            % type(descriptor).__name__)
        self._ptr = out

    @classmethod
    def _adopt(cls, call):
        """A Model around the handle that call(out) makes."""
        self = cls.__new__(cls)
        self._ptr = None
        self._lock = threading.RLock()
        out = model_p()
        call(ctypes.byref(out))
        self._ptr = out
        return self

    @classmethod
    def load(cls, path, sampling_only=False):
        """A model loaded from a safetensors checkpoint (tg_model_load_ex).
        sampling_only=True keeps only what sampling needs (the EMA generator
        where the file has one, else the raw generator): far less memory, but
        discriminate, train_step, save, load_weights and generate(ema=False)
        without the raw generator raise TransGANError (status STATE)."""
        p = _path(path)
        flags = _load_flags(sampling_only)
        return cls._adopt(lambda out: check_file(lib.tg_model_load_ex(p, flags, out), p))

    @classmethod
    def load_bytes(cls, data, sampling_only=False):
        """A model from a checkpoint's bytes in memory (tg_model_load_memory):
        bytes, bytearray, memoryview or any contiguous buffer, e.g. an asset
        read from a packed file. The same checks as load(); the model keeps
        no reference to data."""
        if isinstance(data, str):
            raise TypeError("data must be bytes-like (the checkpoint's bytes), not str; "
                            "use Model.load(path) for a file")
        try:
            view = memoryview(data)
        except TypeError:
            raise TypeError("data must be bytes-like, not %s" % type(data).__name__) from None
        if not view.c_contiguous:
            raise ValueError("data must be a C-contiguous buffer")
        buf = np.frombuffer(view.cast("B"), dtype=np.uint8)
        flags = _load_flags(sampling_only)
        # an empty buffer still passes a valid pointer: the library then says
        # the checkpoint is too short, as for an empty file
        keep = buf if buf.size else np.zeros(1, dtype=np.uint8)
        ptr = keep.ctypes.data_as(ctypes.c_void_p)
        return cls._adopt(lambda out: check(lib.tg_model_load_memory(ptr, buf.size, flags, out)))

    # ------------------------------------------------------------ lifetime
    def close(self):
        """Release the model (tg_model_destroy). Idempotent."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:
            ptr, self._ptr = self._ptr, None
            if ptr:
                lib.tg_model_destroy(ptr)

    @property
    def closed(self):
        return not getattr(self, "_ptr", None)

    def __enter__(self):
        self._handle()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: modules may be gone
            pass

    def __copy__(self):
        raise TypeError("a transgan.Model cannot be copied; save() and load() it instead")

    __deepcopy__ = __copy__

    def __reduce__(self):
        raise TypeError("a transgan.Model cannot be pickled; save() and load() it instead")

    def __repr__(self):
        if self.closed:
            return "<transgan.Model (closed)>"
        d = self.descriptor
        return "<transgan.Model %r %dx%dx%d latent_dim=%d d_steps=%d g_steps=%d>" % (
            d.get("name", ""), self.image_size, self.image_size, self.channels,
            self.latent_dim, self.d_steps, self.g_steps)

    def _handle(self):
        ptr = getattr(self, "_ptr", None)
        if not ptr:
            raise ValueError("model is closed")
        return ptr

    # --------------------------------------------------------- checkpoints
    def save(self, path, weights_only=False, optimizer=True):
        """Write the model as a safetensors checkpoint, atomically (tg_model_save).
        weights_only=True leaves out the EMA, the optimiser moments and the RNG
        state; optimizer=False keeps the EMA but leaves out the optimiser
        moments and the RNG state (a smaller file for sharing a trained model)."""
        self._handle()
        p = _path(path)
        flags = TG_SAVE_WEIGHTS_ONLY if weights_only else 0
        if not optimizer:
            flags |= TG_SAVE_NO_OPTIMIZER
        with self._lock:
            check_file(lib.tg_model_save(self._handle(), p, flags), p, writing=True)

    def load_weights(self, path):
        """Replace weights (and training state present in the file) from a
        checkpoint whose tensors fit this model (tg_model_load_weights). On
        failure the model is unchanged."""
        self._handle()
        p = _path(path)
        with self._lock:
            check_file(lib.tg_model_load_weights(self._handle(), p), p)

    # --------------------------------------------------------------- facts
    def _info(self, key):
        v = ctypes.c_int64()
        with self._lock:
            check(lib.tg_model_info(self._handle(), int(key), ctypes.byref(v)))
        return v.value

    @property
    def descriptor(self):
        """The full descriptor (defaults filled in) as a dict."""
        with self._lock:
            text = lib.tg_model_descriptor(self._handle())
        return json.loads(text.decode("utf-8"))

    image_size = property(lambda self: self._info(Info.IMAGE_SIZE), doc="S: images are S x S")
    channels = property(lambda self: self._info(Info.CHANNELS), doc="1, 3 or 4")
    latent_dim = property(lambda self: self._info(Info.LATENT_DIM), doc="length of one z")
    g_params = property(lambda self: self._info(Info.G_PARAMS), doc="generator parameters")
    d_params = property(lambda self: self._info(Info.D_PARAMS), doc="discriminator parameters")
    d_steps = property(lambda self: self._info(Info.D_STEPS), doc="discriminator updates so far")
    g_steps = property(lambda self: self._info(Info.G_STEPS), doc="generator updates so far")
    d_batch = property(lambda self: self._info(Info.D_BATCH), doc="training.d_batch")
    g_batch = property(lambda self: self._info(Info.G_BATCH), doc="training.g_batch")
    has_ema = property(lambda self: bool(self._info(Info.HAS_EMA)),
                       doc="True if the model keeps an EMA generator")
    sampling_only = property(lambda self: bool(self._info(Info.SAMPLING_ONLY)),
                             doc="True if loaded with sampling_only=True")
    num_classes = property(lambda self: self._info(Info.NUM_CLASSES),
                           doc="classes of a class-conditional model (labels 0 .. K-1); "
                               "0 for an unconditional one")

    @property
    def class_names(self):
        """The class names from the descriptor (a list of num_classes str), or
        None when the model has none (unconditional, or unnamed classes)."""
        with self._lock:
            ptr = self._handle()
            k = self._info(Info.NUM_CLASSES)
            names = [lib.tg_model_class_name(ptr, i) for i in range(k)]
        if not k or names[0] is None:
            return None
        return [x.decode("utf-8") for x in names]

    def _labels(self, labels, n, what="labels"):
        """labels as int32 [n] (or None): an int or class name for all n images,
        or a sequence / array of ints or class names. Range checks stay with
        the library, which names the bad index; names are looked up here."""
        if labels is None:
            return None
        names = None
        if isinstance(labels, (str, int, np.integer)) and not isinstance(labels, bool):
            if n is None:
                raise ValueError("%s: a single class needs n (or z) for the batch size" % what)
            labels = [labels] * n
        out = []
        for i, v in enumerate(labels):
            if isinstance(v, str):
                if names is None:
                    names = self.class_names
                    if names is None:
                        raise ValueError("%s[%d] = %r: the model has no class names"
                                         % (what, i, v))
                try:
                    v = names.index(v)
                except ValueError:
                    raise ValueError("%s[%d] = %r is not a class of the model (%s)"
                                     % (what, i, v, ", ".join(names))) from None
            elif isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError("%s[%d]: a class is an int or a class name, not %s"
                                % (what, i, type(v).__name__))
            if not -2 ** 31 <= int(v) < 2 ** 31:
                raise ValueError("%s[%d] = %d is out of range" % (what, i, int(v)))
            out.append(int(v))
        a = np.ascontiguousarray(out, dtype=np.int32)
        if n is not None and a.shape != (n,):
            raise ValueError("%s: %d labels for %d images" % (what, a.shape[0], n))
        return a

    @property
    def threads(self):
        """Threads the model computes on; 0 (the default) means the calling
        thread's OpenMP maximum (OMP_NUM_THREADS or the number of cores),
        lowered at each call to the CPUs other processes leave free. Settable:
        an int from 0 to 4096 (tg_model_set_threads); a fixed count repeats
        training bit for bit."""
        return self._info(Info.THREADS)

    @threads.setter
    def threads(self, n):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError("threads must be an integer, not %s" % type(n).__name__)
        if not 0 <= int(n) <= 4096:
            raise ValueError("threads must be 0 (OpenMP's default) or 1..4096, got %d" % n)
        with self._lock:
            check(lib.tg_model_set_threads(self._handle(), int(n)))

    _PRECISIONS = ("f32", "bf16")  # tg_precision's values, in order

    @property
    def precision(self):
        """Arithmetic of generate, generate_uint8 and discriminate: "f32" (the
        default) or "bf16" (matrix products in bfloat16 with float32
        accumulation, tg_model_set_precision). Settable; asking for "bf16" on
        a CPU without AVX512-BF16 keeps "f32" (no error): read it back to see
        which is in effect."""
        return self._PRECISIONS[self._info(Info.PRECISION)]

    @precision.setter
    def precision(self, p):
        if not isinstance(p, str):
            raise TypeError("precision must be a str, not %s" % type(p).__name__)
        if p not in self._PRECISIONS:
            raise ValueError("precision must be 'f32' or 'bf16', got %r" % p)
        with self._lock:
            check(lib.tg_model_set_precision(self._handle(), self._PRECISIONS.index(p)))

    @property
    def train_precision(self):
        """Arithmetic of train_step in effect: the descriptor's
        training.precision ("f32" or "bf16"), or "f32" where the CPU lacks
        AVX512-BF16 (TG_INFO_TRAIN_PRECISION). Read-only."""
        return self._PRECISIONS[self._info(Info.TRAIN_PRECISION)]

    # ------------------------------------------------------------ sampling
    def latent(self, n, seed=0):
        """n standard normal latent vectors drawn from seed: float32 [n, latent_dim]."""
        self._handle()
        n = _count(n)
        seed = _uint64(seed, "seed")
        with self._lock:
            ptr = self._handle()
            out = np.empty((n, self.latent_dim), dtype=np.float32)
            check(lib.tg_latent_sample(ptr, seed, n, _fp(out), out.size))
        return out

    def _z(self, n, z, seed):
        """The latent batch of a generate call (caller holds the lock)."""
        if z is None:
            if n is None:
                raise ValueError("give n (with an optional seed) or z")
            return self.latent(n, 0 if seed is None else seed)
        if seed is not None:
            raise ValueError("seed is only used without z")
        z = _float32(z, "z")
        _check_shape(z, (None if n is None else _count(n), self.latent_dim), "z")
        return z

    def _batch(self, n, z, seed, labels):
        """z and int32 labels of a generate call (caller holds the lock); a
        labels list alone sets n."""
        if n is None and z is None and labels is not None and not isinstance(
                labels, (str, int, np.integer)):
            n = len(labels)
        z = self._z(n, z, seed)
        return z, self._labels(labels, z.shape[0])

    def generate(self, n=None, z=None, seed=None, ema=True, labels=None):
        """Images float32 [n, C, S, S] from z [n, latent_dim], or from n latents
        drawn from seed (default 0). ema=False uses the raw generator weights.
        labels (class-conditional models): the class of every image, as an int
        or class name for all, or a sequence of ints / class names (its length
        gives n when neither n nor z does); None lets each z pick its class."""
        with self._lock:
            ptr = self._handle()
            z, y = self._batch(n, z, seed, labels)
            S, C = self.image_size, self.channels
            out = np.empty((z.shape[0], C, S, S), dtype=np.float32)
            check(lib.tg_generate_labels(ptr, _fp(z), _i32p(y), z.shape[0],
                                         TG_GEN_EMA if ema else TG_GEN_RAW, _fp(out), out.size))
        return out

    def generate_uint8(self, n=None, z=None, seed=None, ema=True, format=None, labels=None):
        """As generate(), as 8-bit pixels: uint8 [n, S, S, 3] ("rgb"), [n, S, S, 4]
        ("rgba") or [n, S, S] ("gray"), so that PIL's Image.fromarray(px[i])
        takes each image. format None picks from the channels (1 -> "gray",
        3 -> "rgb", 4 -> "rgba"). labels as for generate()."""
        with self._lock:
            ptr = self._handle()
            fmt = _pixel_format(format, self.channels)
            z, y = self._batch(n, z, seed, labels)
            S = self.image_size
            out = _pixels_out(z.shape[0], S, fmt)
            check(lib.tg_generate_pixels_labels(ptr, _fp(z), _i32p(y), z.shape[0],
                                                TG_GEN_EMA if ema else TG_GEN_RAW, int(fmt),
                                                out.ctypes.data_as(uint8_p), out.size))
        return out

    def discriminate(self, images, labels=None):
        """Discriminator scores float32 [n] of float images [n, C, S, S] in [-1, 1]
        (higher = more real). Integer arrays (e.g. 8-bit pixels) raise TypeError.
        labels (class-conditional models): the images' classes, which add the
        projection term to the scores; None scores without it."""
        self._handle()  # a closed model says so first
        a = _images(images, "images")
        with self._lock:
            ptr = self._handle()
            S, C = self.image_size, self.channels
            _check_images(a, C, S, "images")
            y = self._labels(labels, a.shape[0])
            scores = np.empty(a.shape[0], dtype=np.float32)
            check(lib.tg_discriminate_labels(ptr, _fp(a), _i32p(y), a.shape[0], _fp(scores),
                                             scores.size))
        return scores

    # ------------------------------------------------------------ training
    def set_data_parallel(self, rank, world, allreduce=None):
        """Make this model replica ``rank`` of ``world`` in data-parallel
        training (tg_model_set_data_parallel; docs/DISTRIBUTED.md): train_step
        then takes d_batch // world real images (and z_d, z_g, alpha rows),
        the replica's rows of the global batch, and before each optimiser
        update calls ``allreduce(kind, buf)``, which must replace the float32
        array ``buf`` in place by its sum over all replicas, the same on every
        replica (mpi4py: ``comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)``);
        ``kind`` is 1 (D's gradient), 2 (G's) or 3 (statistics). An exception
        in ``allreduce`` fails the step with TransGANError (status IO),
        chained from it. world=1 turns it off."""
        rank, world = operator.index(rank), operator.index(world)
        if world > 1 and not callable(allreduce):
            raise TypeError("allreduce must be a callable (kind, buf) when world > 1")
        errors = []  # the callback's exception, for train_step (no reference to self)

        def call(user, kind, buf, n):
            try:
                allreduce(int(kind), np.ctypeslib.as_array(buf, shape=(n,)))
                return 0
            except BaseException as e:  # noqa: B902 - it must not cross the C frames
                errors.append(e)
                return 1

        cb = AllreduceFn(call) if world > 1 else AllreduceFn()
        with self._lock:
            check(lib.tg_model_set_data_parallel(self._handle(), rank, world, cb, None))
            # the C library keeps the pointer: keep the callback alive with the model
            self._dp = (world, cb, errors) if world > 1 else None

    def train_step(self, real, z_d=None, z_g=None, alpha=None, labels=None, fake_labels_d=None,
                   fake_labels_g=None):
        """One training step (tg_train_step) on the real batch, float [d_batch, C,
        S, S] in [-1, 1] (integer arrays, e.g. 8-bit pixels, raise TypeError).

        Optional noise: z_d [d_batch, latent_dim], z_g [g_batch, latent_dim],
        alpha [d_batch]; None draws it from the model's RNG. Returns a dict:
        g_updated (bool), d_steps, g_steps (int), d_loss, gp, d_real, d_fake,
        g_loss, sr_loss, d_grad_norm, g_grad_norm (float; g_loss and g_grad_norm
        are NaN when the generator was not updated). On TransGANError the model
        is as before the call.

        A class-conditional model needs labels, the real batch's classes (ints
        or class names, [d_batch]); fake_labels_d [d_batch] and fake_labels_g
        [g_batch] give the fakes' classes (None: drawn by the library)."""
        self._handle()  # a closed model says so first
        real = _images(real, "real")
        z_d = None if z_d is None else _float32(z_d, "z_d")
        z_g = None if z_g is None else _float32(z_g, "z_g")
        alpha = None if alpha is None else _float32(alpha, "alpha")
        with self._lock:
            ptr = self._handle()
            S, C, L = self.image_size, self.channels, self.latent_dim
            nd, ng = self.d_batch, self.g_batch
            dp = getattr(self, "_dp", None)
            if dp:  # a data-parallel replica's share
                nd, ng = nd // dp[0], ng // dp[0]
            _check_images(real, C, S, "real", nd)
            if z_d is not None:
                _check_shape(z_d, (nd, L), "z_d")
            if z_g is not None:
                _check_shape(z_g, (ng, L), "z_g")
            if alpha is not None:
                _check_shape(alpha, (nd,), "alpha")
            yr = self._labels(labels, nd)
            yd = self._labels(fake_labels_d, nd, "fake_labels_d")
            yg = self._labels(fake_labels_g, ng, "fake_labels_g")
            st = TrainStats()
            st.struct_size = ctypes.sizeof(TrainStats)
            tl = TrainLabels(ctypes.sizeof(TrainLabels), 0, _i32p(yr), _i32p(yd), _i32p(yg))
            try:
                check(lib.tg_train_step_labels(ptr, _fp(real), nd, ctypes.byref(tl),
                                               _fp_or_null(z_d), _fp_or_null(z_g),
                                               _fp_or_null(alpha), ctypes.byref(st)))
            except TransGANError as e:
                if dp and dp[2]:
                    cause = dp[2].pop()
                    dp[2].clear()
                    raise e from cause
                raise
        stats = {}
        for name, _ in TrainStats._fields_:
            if name == "struct_size":
                continue
            v = getattr(st, name)
            if name == "g_updated":
                v = bool(v)
            elif name in ("d_steps", "g_steps"):
                v = int(v)
            else:
                v = float(v)
            stats[name] = v
        return stats

