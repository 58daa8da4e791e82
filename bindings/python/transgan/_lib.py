"""Finding, checking and declaring libtransgan (ctypes).

Lookup order (the first that applies wins):

1. the environment variable ``TRANSGAN_LIBRARY``: a path to the shared
   library; if it is set but cannot be loaded, import fails (no fallback);
2. the build tree, only when this package is imported from the repository's
   ``bindings/python`` (source tree or editable install):
   ``<repository>/build/libtransgan.so.0``;
3. the system, as a C program finds it: the soname ``libtransgan.so.0``
   through the dynamic loader (``LD_LIBRARY_PATH``, the ``ldconfig`` cache,
   ``/lib``, ``/usr/lib``), then the folders that ``/etc/ld.so.conf`` lists
   (``/usr/local/lib`` on Debian), so a ``make install`` is found even before
   ``ldconfig`` has refreshed the cache.

The ABI is checked at import: the running library's major version must be
``EXPECTED_MAJOR`` and its version at least ``MINIMUM_VERSION``; while the major
version is 0 the minor version must match too (docs/ABI.md).
"""
import ctypes
import enum
import errno
import glob
import os
import re

EXPECTED_MAJOR = 0
MINIMUM_VERSION = (0, 1, 0)
SONAME = "libtransgan.so.%d" % EXPECTED_MAJOR

TG_SEED_FROM_DESCRIPTOR = 2**64 - 1
TG_SAVE_WEIGHTS_ONLY = 1
TG_SAVE_NO_OPTIMIZER = 2
TG_LOAD_SAMPLING_ONLY = 1
TG_GEN_EMA = 0
TG_GEN_RAW = 1


class Status(enum.IntEnum):
    """tg_status values (pinned by the C ABI)."""
    OK = 0
    INVALID_ARGUMENT = 1
    OUT_OF_MEMORY = 2
    IO = 3
    DESCRIPTOR = 4
    FORMAT = 5
    DTYPE = 6
    SHAPE = 7
    MISSING = 8
    NONFINITE = 9
    BACKEND = 10
    UNSUPPORTED = 11
    STATE = 12
    INTERNAL = 13


class PixelFormat(enum.IntEnum):
    """tg_pixel_format: 8-bit interleaved layouts; the value is bytes per pixel."""
    GRAY8 = 1
    RGB8 = 3
    RGBA8 = 4


class Info(enum.IntEnum):
    """tg_info keys."""
    IMAGE_SIZE = 1
    CHANNELS = 2
    LATENT_DIM = 3
    G_PARAMS = 4
    D_PARAMS = 5
    D_STEPS = 6
    G_STEPS = 7
    HAS_EMA = 8
    D_BATCH = 9
    G_BATCH = 10
    THREADS = 11
    SAMPLING_ONLY = 12
    PRECISION = 13
    D_KIND = 15
    NUM_CLASSES = 14
    TRAIN_PRECISION = 16


class TransGANError(Exception):
    """A libtransgan call returned a status other than TG_OK.

    Attributes: ``status`` (int; a :class:`Status` when this binding knows the
    value), ``status_name`` (``tg_status_string(status)``) and ``message``
    (``tg_last_error()`` right after the failing call).
    """

    def __init__(self, status, status_name, message):
        self.status = status
        self.status_name = status_name
        self.message = message
        super().__init__(status, status_name, message)

    def __str__(self):
        if self.message:
            return "%s: %s" % (self.status_name, self.message)
        return self.status_name


class TransGANFileNotFoundError(TransGANError, FileNotFoundError):
    """A TransGANError (status IO) for a file or folder that does not exist.
    Also a FileNotFoundError, so ``except FileNotFoundError`` (or OSError)
    catches it as for open(): ``errno`` is ENOENT and ``filename`` the path."""

    def __init__(self, status, status_name, message, filename=None):
        FileNotFoundError.__init__(self, errno.ENOENT, os.strerror(errno.ENOENT), filename)
        self.status = status
        self.status_name = status_name
        self.message = message

    __str__ = TransGANError.__str__


class _TgModel(ctypes.Structure):
    """The opaque struct tg_model."""


class TrainStats(ctypes.Structure):
    """struct tg_train_stats (0.1.0 layout)."""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("g_updated", ctypes.c_uint32),
        ("d_steps", ctypes.c_uint64),
        ("g_steps", ctypes.c_uint64),
        ("d_loss", ctypes.c_double),
        ("gp", ctypes.c_double),
        ("d_real", ctypes.c_double),
        ("d_fake", ctypes.c_double),
        ("g_loss", ctypes.c_double),
        ("sr_loss", ctypes.c_double),
        ("d_grad_norm", ctypes.c_double),
        ("g_grad_norm", ctypes.c_double),
    ]


int32_p = ctypes.POINTER(ctypes.c_int32)


class TrainLabels(ctypes.Structure):
    """struct tg_train_labels (0.1.0 layout)."""
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
        ("real", int32_p),
        ("fake_d", int32_p),
        ("fake_g", int32_p),
    ]


model_p = ctypes.POINTER(_TgModel)
float_p = ctypes.POINTER(ctypes.c_float)
uint8_p = ctypes.POINTER(ctypes.c_uint8)
_status = ctypes.c_int      # tg_status (a C enum: int)
_size = ctypes.c_size_t

# tg_allreduce_fn: int (*)(void *user, tg_allreduce_kind kind, float *buf, size_t n)
AllreduceFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, float_p, _size)

# name: (restype, argtypes) for every function of include/transgan.h
_SIGNATURES = {
    "tg_version": (ctypes.c_uint32, []),
    "tg_version_string": (ctypes.c_char_p, []),
    "tg_status_string": (ctypes.c_char_p, [_status]),
    "tg_last_error": (ctypes.c_char_p, []),
    "tg_model_create": (_status, [ctypes.c_char_p, ctypes.c_uint64, ctypes.POINTER(model_p)]),
    "tg_model_create_from_file": (_status, [ctypes.c_char_p, ctypes.c_uint64,
                                            ctypes.POINTER(model_p)]),
    "tg_model_destroy": (None, [model_p]),
    "tg_model_descriptor": (ctypes.c_char_p, [model_p]),
    "tg_model_info": (_status, [model_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int64)]),
    "tg_model_set_threads": (_status, [model_p, ctypes.c_int]),
    "tg_model_set_precision": (_status, [model_p, ctypes.c_int]),
    "tg_model_load": (_status, [ctypes.c_char_p, ctypes.POINTER(model_p)]),
    "tg_model_load_ex": (_status, [ctypes.c_char_p, ctypes.c_uint32, ctypes.POINTER(model_p)]),
    "tg_model_load_memory": (_status, [ctypes.c_void_p, _size, ctypes.c_uint32,
                                       ctypes.POINTER(model_p)]),
    "tg_model_load_weights": (_status, [model_p, ctypes.c_char_p]),
    "tg_model_save": (_status, [model_p, ctypes.c_char_p, ctypes.c_uint32]),
    "tg_latent_sample": (_status, [model_p, ctypes.c_uint64, _size, float_p, _size]),
    "tg_generate": (_status, [model_p, float_p, _size, ctypes.c_uint32, float_p, _size]),
    "tg_images_to_pixels": (_status, [float_p, _size, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                      uint8_p, _size]),
    "tg_generate_pixels": (_status, [model_p, float_p, _size, ctypes.c_uint32, ctypes.c_int,
                                     uint8_p, _size]),
    "tg_discriminate": (_status, [model_p, float_p, _size, float_p, _size]),
    "tg_train_step": (_status, [model_p, float_p, _size, float_p, float_p, float_p,
                                ctypes.POINTER(TrainStats)]),
    "tg_model_set_data_parallel": (_status, [model_p, ctypes.c_int, ctypes.c_int, AllreduceFn,
                                             ctypes.c_void_p]),
    "tg_model_class_name": (ctypes.c_char_p, [model_p, ctypes.c_int64]),
    "tg_generate_labels": (_status, [model_p, float_p, int32_p, _size, ctypes.c_uint32, float_p,
                                     _size]),
    "tg_generate_pixels_labels": (_status, [model_p, float_p, int32_p, _size, ctypes.c_uint32,
                                            ctypes.c_int, uint8_p, _size]),
    "tg_discriminate_labels": (_status, [model_p, float_p, int32_p, _size, float_p, _size]),
    "tg_train_step_labels": (_status, [model_p, float_p, _size, ctypes.POINTER(TrainLabels),
                                       float_p, float_p, float_p, ctypes.POINTER(TrainStats)]),
}


def _version_tuple(number):
    """TG_VERSION_NUMBER = MAJOR * 10000 + MINOR * 100 + PATCH."""
    return (number // 10000, number // 100 % 100, number % 100)


def check_abi(number, where="libtransgan"):
    """Raise ImportError unless a library reporting tg_version() == number fits."""
    found = _version_tuple(number)
    shown = "%d.%d.%d" % found
    need = "%d.%d.%d" % MINIMUM_VERSION
    if found[0] != EXPECTED_MAJOR:
        raise ImportError(
            "transgan: %s is version %s (ABI major %d), but these bindings need ABI major %d "
            "(version >= %s); install a matching libtransgan or set TRANSGAN_LIBRARY"
            % (where, shown, found[0], EXPECTED_MAJOR, need))
    if found[0] == 0 and found[1] != MINIMUM_VERSION[1]:
        # docs/ABI.md: while MAJOR is 0, a MINOR release may break the ABI
        raise ImportError(
            "transgan: %s is version %s; these bindings were made for %d.%d.x (before 1.0 "
            "each minor release may change the ABI); install a matching libtransgan or set "
            "TRANSGAN_LIBRARY" % (where, shown, MINIMUM_VERSION[0], MINIMUM_VERSION[1]))
    if found < MINIMUM_VERSION:
        raise ImportError(
            "transgan: %s is version %s, but these bindings need version >= %s; "
            "install a newer libtransgan or set TRANSGAN_LIBRARY" % (where, shown, need))
    return found


def _build_tree_candidate():
    """<repo>/build/libtransgan.so.0 when this package is the repository's
    bindings/python/transgan (source tree or editable install), else None: an
    installed copy (site-packages) must not pick up a folder that happens to
    sit two levels above it."""
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # bindings/python
    repo = os.path.normpath(os.path.join(pkg_root, "..", ".."))
    if not (os.path.isfile(os.path.join(pkg_root, "pyproject.toml"))
            and os.path.isfile(os.path.join(repo, "include", "transgan.h"))):
        return None
    return os.path.join(repo, "build", SONAME)


def ld_so_conf_dirs(conf="/etc/ld.so.conf"):
    """The folders that ``conf`` lists, following its ``include`` lines, in
    order: the folders ``ldconfig`` puts in the loader's cache. Read directly
    because after ``make install`` the cache is stale until root runs ldconfig,
    and ctypes.util.find_library only looks in the cache (and in gcc's link
    path, which lacks /usr/local/lib)."""
    dirs, seen = [], set()

    def read(path, depth):
        if depth > 8 or path in seen:
            return
        seen.add(path)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return
        for line in lines:
            words = line.split("#", 1)[0].replace(",", " ").split()
            if not words or words[0] == "hwcap":
                continue
            if words[0] == "include":
                for pat in words[1:]:
                    if not os.path.isabs(pat):
                        pat = os.path.join(os.path.dirname(path), pat)
                    for p in sorted(glob.glob(pat)):
                        read(p, depth + 1)
                continue
            for d in words:
                d = d.split("=", 1)[0]  # the old "dir=TYPE" form
                if os.path.isabs(d) and d not in dirs:
                    dirs.append(d)

    read(conf, 0)
    return dirs


def _load():
    """Return (CDLL, path or name, how it was found)."""
    env = os.environ.get("TRANSGAN_LIBRARY")
    if env:
        try:
            return ctypes.CDLL(env), env, "TRANSGAN_LIBRARY"
        except OSError as e:
            raise ImportError("transgan: cannot load TRANSGAN_LIBRARY=%r: %s" % (env, e)) from e
    errors = []
    build = _build_tree_candidate()
    if build and os.path.exists(build):
        try:
            return ctypes.CDLL(build), build, "build tree"
        except OSError as e:
            errors.append("%s: %s" % (build, e))
    try:
        return ctypes.CDLL(SONAME), SONAME, "system"
    except OSError as e:
        errors.append("%s: %s" % (SONAME, e))
    for d in ld_so_conf_dirs():
        path = os.path.join(d, SONAME)
        if os.path.exists(path):
            try:
                return ctypes.CDLL(path), path, "system"
            except OSError as e:
                errors.append("%s: %s" % (path, e))
    raise ImportError(
        "transgan: libtransgan not found: install the library (make install, as root, which "
        "also runs ldconfig), put the folder holding %s on LD_LIBRARY_PATH, build the "
        "repository (make; found when these bindings are used from the repository), or set "
        "TRANSGAN_LIBRARY to the library's path; tried %s"
        % (SONAME, "; ".join(errors)))


def _declare(lib, where):
    missing = []
    for name, (restype, argtypes) in _SIGNATURES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    if missing:
        raise ImportError("transgan: %s lacks %s" % (where, ", ".join(missing)))


lib, library_path, library_source = _load()
try:
    lib.tg_version.restype = ctypes.c_uint32
    lib.tg_version.argtypes = []
    _number = lib.tg_version()
except AttributeError as e:
    raise ImportError("transgan: %s is not libtransgan (no tg_version)" % library_path) from e
library_version = check_abi(_number, library_path)
_declare(lib, library_path)


def _text(b):
    return b.decode("utf-8", "replace") if b is not None else ""


# The library's hints name C functions; give the Python spelling first.
_PY_HINTS = ((re.compile(r"use tg_model_create_from_file\b"),
              "use transgan.Model(path) (tg_model_create_from_file)"),
             (re.compile(r"use tg_model_load\b"), "use transgan.Model.load(path) (tg_model_load)"))


def error_for(status):
    """The TransGANError for a failed call; call right after it, on the same thread."""
    message = _text(lib.tg_last_error())  # first: valid until the next tg_ call
    for c_hint, py_hint in _PY_HINTS:
        message = c_hint.sub(py_hint, message)
    name = _text(lib.tg_status_string(status))
    try:
        status = Status(status)
    except ValueError:
        pass
    return TransGANError(status, name, message)


def check(status):
    if status != 0:
        raise error_for(status)


def check_file(status, path, writing=False):
    """check() for a call on a file: an IO failure on a path that does not
    exist (for writing: whose folder does not exist) raises
    TransGANFileNotFoundError."""
    if status == 0:
        return
    e = error_for(status)
    name = os.fsdecode(path)
    missing = (os.path.dirname(name) or ".") if writing else name
    if e.status == Status.IO and not os.path.exists(missing):
        raise TransGANFileNotFoundError(e.status, e.status_name, e.message, name)
    raise e
