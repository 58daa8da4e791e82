"""transgan: Python bindings (ctypes, numpy) for libtransgan, TransGAN in C.

    import transgan
    with transgan.Model.load("model.safetensors") as m:
        images = m.generate(n=4, seed=7)          # float32 [4, C, S, S] in [-1, 1]
        pixels = m.generate_uint8(n=4, seed=7)    # uint8 [4, S, S, C]; grey: [4, S, S]
        scores = m.discriminate(images)           # float32 [4]

The shared library is found through TRANSGAN_LIBRARY, then (used from the
repository) its build/, then the system as the dynamic loader finds it (see
transgan._lib). Library failures raise TransGANError (for a missing file
TransGANFileNotFoundError, also a FileNotFoundError); bad arguments raise
ValueError / TypeError; a closed model raises ValueError("model is closed").
"""
from ._lib import (TransGANError, TransGANFileNotFoundError, Status, PixelFormat,
                   TG_SEED_FROM_DESCRIPTOR, EXPECTED_MAJOR, MINIMUM_VERSION, library_path,
                   library_source, library_version)
from ._model import Model, images_to_pixels, version

__version__ = "0.1.0"

__all__ = ["Model", "TransGANError", "TransGANFileNotFoundError", "Status", "PixelFormat",
           "images_to_pixels", "version",
           "TG_SEED_FROM_DESCRIPTOR", "EXPECTED_MAJOR", "MINIMUM_VERSION", "library_path",
           "library_source", "library_version", "__version__"]
