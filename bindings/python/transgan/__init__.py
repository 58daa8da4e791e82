"""transgan: Python bindings (ctypes, numpy) for libtransgan, TransGAN in C.

    import transgan
    with transgan.Model.load("model.safetensors") as m:
        images = m.generate(n=4, seed=7)          # float32 [4, C, S, S] in [-1, 1]
        pixels = m.generate_uint8(n=4, seed=7)    # uint8 [4, S, S, C]
        scores = m.discriminate(images)           # float32 [4]

The shared library is found through TRANSGAN_LIBRARY, then the source tree's
build/, then the system (see transgan._lib). Library failures raise
TransGANError; bad arguments raise ValueError / TypeError; a closed model
raises ValueError("model is closed").
"""
from ._lib import (TransGANError, Status, PixelFormat, TG_SEED_FROM_DESCRIPTOR,
                   EXPECTED_MAJOR, MINIMUM_VERSION, library_path, library_source,
                   library_version)
from ._model import Model, images_to_pixels, version

__version__ = "0.1.0"

__all__ = ["Model", "TransGANError", "Status", "PixelFormat", "images_to_pixels", "version",
           "TG_SEED_FROM_DESCRIPTOR", "EXPECTED_MAJOR", "MINIMUM_VERSION", "library_path",
           "library_source", "library_version", "__version__"]
