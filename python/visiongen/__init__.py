"""Python binding of visiongen's C API (libvisiongen.so.0), with ctypes only.

    import visiongen
    with visiongen.Engine() as engine:                  # None = the demo model
        result = engine.generate("a red star on a white background", seed=42)
        result[0].save("star.png")                      # a PIL.Image, see below
        result.save("star.png")                         # the same, with the infotext
        print(result.infotext[0], result.seeds[0])

Finding the library: $VG_LIBRARY (a path) first; then lib/libvisiongen.so.0
or lib/<multiarch>/libvisiongen.so.0 in the folders above this package (the
install prefix); then the dynamic linker's search path. Importing fails with
ImportError when none loads or its C ABI version is not 1.

Engine(model=None, *, precision, lora_mode, threads, tokenizer_dir,
config_dir, vae, unet, transformer, keep_text_encoder, quant_compute,
data_dir) loads a model; `.info` describes it; close() (or `with`) frees it.

Engine.generate(prompt, **fields) runs one generation on the calling thread,
with the GIL released while the library works (so other Python threads run;
generations on one Engine take turns). The keywords are vg_params' fields;
None keeps the library's default, and any other keyword (clip_skip=2,
rng="philox", mode="turbo", ...) is passed as extra_json. Callbacks run on
the calling thread:

- progress(stage, step, total): stage is "text_encode", "denoise" or
  "decode"; returning False cancels (raising Cancelled).
- preview(image, step, total): a cheap picture every preview_every steps.
- cancel: a threading.Event or a callable returning True, polled every step.

An exception raised in a callback cancels the run and is re-raised by
generate() itself (so is Ctrl-C while the library works).

It returns a Result: a list of the images, each a PIL.Image when output is
"auto" and PIL imports (or output="pil"), else a numpy uint8 array of shape
(height, width, channels) when output="numpy" (or "auto" and numpy imports),
else a visiongen.Image (width, height, channels, pixels bytes, save()). The
Result also has:

- infotext: the A1111 "parameters" text per image (video models: per clip);
- seeds: the seed per image (or clip);
- metadata: dict (params, seeds, infotext, warnings, sampling, timings);
- videos: a list of Video for video models, each a list of frames (in the
  output form) with .fps and .infotext; empty for image models (whose
  Result list then holds the images; a video model's holds none);
- save(path, index=0) and save_video(path, index=0), which write through
  the library (PNG infotext chunk; mp4/webm/webp/gif).

Failures raise VisiongenError (.code = the C vg_status, .name e.g.
"invalid_argument", .message), as the subclass for its code when there is
one (InvalidArgument, FileNotFound, Cancelled, ...).
"""

from . import _lib
from ._engine import Engine, Result, Video, params_json
from ._errors import (Cancelled, CapabilityNotSupported, CorruptFile, DiskFull, FileNotFound,
                      InvalidArgument, LoraIncompatible, LoraNotFound, MissingComponent,
                      OutOfMemory, UnsupportedFormat, UnsupportedModel, VisiongenError)
from ._image import Image

__version__ = "0.1.0"

__all__ = [
    "Cancelled", "CapabilityNotSupported", "CorruptFile", "DiskFull", "Engine", "FileNotFound", "Image",
    "InvalidArgument", "LoraIncompatible", "LoraNotFound", "MissingComponent", "OutOfMemory",
    "Result", "UnsupportedFormat", "UnsupportedModel", "Video", "VisiongenError", "abi_version",
    "library_path", "params_json", "version",
]


def version():
    """The library's version string (vg_version)."""
    return _lib.text(_lib.lib.vg_version())


def abi_version():
    """The library's C ABI version (vg_abi_version); this binding needs 1."""
    return _lib.lib.vg_abi_version()


def library_path():
    """The path the library was loaded from (as given to the dynamic linker)."""
    return _lib.lib._name
