"""Finding libvisiongen.so.0 and the ctypes mirror of visiongen_c.h.

The structs below follow include/visiongen/visiongen_c.h field for field and
type for type; keep them in step with it. Structs the caller fills are made
with new_struct(), which lets the library's init function set the defaults
and then claims only this mirror's size in `struct_size`.
"""

import ctypes
import glob
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_double, c_float,
                    c_int, c_int32, c_int64, c_size_t, c_uint8, c_uint32,
                    c_uint64, c_void_p)

ABI_VERSION = 1
LIBRARY_NAME = "libvisiongen.so.0"
# How many folders above the package to look for lib/ (the package sits at
# <prefix>/lib/python3/dist-packages/visiongen, four levels below <prefix>).
_SEARCH_DEPTH = 5

# ---- structs ----


class VgImage(Structure):
    _fields_ = [
        ("width", c_int32),
        ("height", c_int32),
        ("channels", c_int32),
        ("pixels", POINTER(c_uint8)),
    ]


# Opaque handles: only ever used through pointers.
class VgContext(Structure):
    pass


class VgModel(Structure):
    pass


class VgJob(Structure):
    pass


class VgResult(Structure):
    pass


class VgContextParams(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("threads", c_int32),
        ("data_dir", c_char_p),
    ]


class VgLoadOptions(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("precision", c_char_p),
        ("lora_mode", c_char_p),
        ("quant_compute", c_char_p),
        ("tokenizer_dir", c_char_p),
        ("config_dir", c_char_p),
        ("vae", c_char_p),
        ("unet", c_char_p),
        ("transformer", c_char_p),
        ("keep_text_encoder", c_int32),
    ]


class VgParams(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("task", c_char_p),
        ("prompt", c_char_p),
        ("negative_prompt", c_char_p),
        ("width", c_int32),
        ("height", c_int32),
        ("steps", c_int32),
        ("cfg_scale", c_float),
        ("seed", c_int64),
        ("sampler", c_char_p),
        ("scheduler", c_char_p),
        ("batch_size", c_int32),
        ("strength", c_float),
        ("init_image", POINTER(VgImage)),
        ("mask", POINTER(VgImage)),
        ("guidance", c_float),
        ("frames", c_int32),
        ("fps", c_float),
        ("preview_every", c_int32),
        ("loras", c_char_p),
        ("extra_json", c_char_p),
    ]


class VgProgress(Structure):
    _fields_ = [
        ("stage", c_char_p),
        ("step", c_int32),
        ("total", c_int32),
        ("stage_elapsed_s", c_double),
    ]


PROGRESS_FN = CFUNCTYPE(c_int, POINTER(VgProgress), c_void_p)
PREVIEW_FN = CFUNCTYPE(None, POINTER(VgImage), c_int32, c_int32, c_void_p)
ABORT_FN = CFUNCTYPE(c_int, c_void_p)


class VgCallbacks(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("progress", PROGRESS_FN),
        ("preview", PREVIEW_FN),
        ("abort", ABORT_FN),
        ("user", c_void_p),
    ]


# ---- functions: name -> (restype, argtypes) ----

_status = c_int  # vg_status (a C enum)
_ctx_p = POINTER(VgContext)
_model_p = POINTER(VgModel)
_job_p = POINTER(VgJob)
_result_p = POINTER(VgResult)
_image_p = POINTER(VgImage)
_params_p = POINTER(VgParams)
_callbacks_p = POINTER(VgCallbacks)

PROTOTYPES = {
    "vg_status_name": (c_char_p, [_status]),
    "vg_last_error": (c_char_p, []),
    "vg_version": (c_char_p, []),
    "vg_abi_version": (c_int32, []),
    "vg_context_params_init_sized": (None, [POINTER(VgContextParams), c_size_t]),
    "vg_context_create": (_status, [POINTER(VgContextParams), POINTER(_ctx_p)]),
    "vg_context_free": (None, [_ctx_p]),
    "vg_context_default_model": (c_char_p, [_ctx_p]),
    "vg_load_options_init_sized": (None, [POINTER(VgLoadOptions), c_size_t]),
    "vg_model_load": (_status, [_ctx_p, c_char_p, POINTER(VgLoadOptions), POINTER(_model_p)]),
    "vg_model_free": (None, [_model_p]),
    "vg_model_info_json": (c_char_p, [_model_p]),
    "vg_params_init_sized": (None, [_params_p, c_size_t]),
    # char** out: c_void_p keeps the address so that vg_string_free gets it.
    "vg_params_to_json": (_status, [_params_p, POINTER(c_void_p)]),
    "vg_string_free": (None, [c_void_p]),
    "vg_callbacks_init_sized": (None, [_callbacks_p, c_size_t]),
    "vg_generate": (_status, [_model_p, _params_p, _callbacks_p, POINTER(_result_p)]),
    "vg_job_start": (_status, [_model_p, _params_p, _callbacks_p, POINTER(_job_p)]),
    "vg_job_cancel": (None, [_job_p]),
    "vg_job_done": (c_int, [_job_p]),
    "vg_job_wait": (_status, [_job_p, POINTER(_result_p)]),
    "vg_job_free": (None, [_job_p]),
    "vg_result_image_count": (c_size_t, [_result_p]),
    "vg_result_image": (_status, [_result_p, c_size_t, _image_p]),
    "vg_result_video_count": (c_size_t, [_result_p]),
    "vg_result_frame_count": (c_size_t, [_result_p, c_size_t]),
    "vg_result_frame": (_status, [_result_p, c_size_t, c_size_t, _image_p]),
    "vg_result_fps": (c_double, [_result_p, c_size_t]),
    "vg_result_infotext": (c_char_p, [_result_p, c_size_t]),
    "vg_result_seed": (c_uint64, [_result_p, c_size_t]),
    "vg_result_metadata_json": (c_char_p, [_result_p]),
    "vg_result_free": (None, [_result_p]),
    "vg_image_save": (_status, [_image_p, c_char_p, c_char_p]),
    "vg_image_load": (_status, [c_char_p, _image_p]),
    "vg_image_release": (None, [_image_p]),
    "vg_result_save_video": (_status, [_result_p, c_size_t, c_char_p]),
    "vg_result_save_frames": (_status, [_result_p, c_size_t, c_char_p]),
    "vg_model_validate": (_status, [_model_p, _params_p]),
}

# ---- structs the caller fills ----

def new_struct(cls, init_sized):
    """A `cls` set to the library's defaults by `init_sized`
    (vg_params_init_sized, ...), which writes no more than this mirror's
    size, so the library reads only the fields declared here and keeps its
    defaults for any newer ones."""
    struct = cls()
    init_sized(ctypes.byref(struct), ctypes.sizeof(cls))
    return struct


# ---- loading ----


def _candidate_paths(package_dir):
    """For each folder above the package, nearest first (as installed, then
    as resolved through symbolic links): <dir>/libvisiongen.so.0 (a libdir
    holding python3/dist-packages, e.g. lib64), <dir>/lib/libvisiongen.so.0
    and <dir>/lib/<multiarch>/libvisiongen.so.0."""
    seen = set()
    for start in (os.path.abspath(package_dir), os.path.realpath(package_dir)):
        folder = start
        for _ in range(_SEARCH_DEPTH):
            folder = os.path.dirname(folder)
            lib_dir = os.path.join(folder, "lib")
            found = [os.path.join(folder, LIBRARY_NAME), os.path.join(lib_dir, LIBRARY_NAME)]
            found += sorted(glob.glob(os.path.join(glob.escape(lib_dir), "*", LIBRARY_NAME)))
            for path in found:
                if path not in seen and os.path.isfile(path):
                    seen.add(path)
                    yield path


def _open_library():
    """Loads the library: $VG_LIBRARY, then next to the install prefix, then
    the dynamic linker's search path. Raises ImportError when none loads."""
    explicit = os.environ.get("VG_LIBRARY")
    if explicit:
        try:
            return ctypes.CDLL(explicit)
        except OSError as e:
            raise ImportError(f"visiongen: cannot load VG_LIBRARY={explicit!r}: {e}") from e
    tried = []
    for path in _candidate_paths(os.path.dirname(__file__)):
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path} ({e})")
    try:
        return ctypes.CDLL(LIBRARY_NAME)
    except OSError as e:
        tried.append(f"{LIBRARY_NAME} on the system library path ({e})")
    raise ImportError(
        f"visiongen: cannot find {LIBRARY_NAME}; tried: " + "; ".join(tried)
        + f". Set VG_LIBRARY to its path (e.g. VG_LIBRARY=build/{LIBRARY_NAME}).")


def _declare(cdll):
    for name, (restype, argtypes) in PROTOTYPES.items():
        try:
            fn = getattr(cdll, name)
        except AttributeError as e:
            raise ImportError(f"visiongen: {cdll._name} lacks {name}; is it an older build?") from e
        fn.restype = restype
        fn.argtypes = argtypes


def load():
    cdll = _open_library()
    try:
        abi = cdll.vg_abi_version
    except AttributeError as e:
        raise ImportError(f"visiongen: {cdll._name} is not the visiongen library (no vg_abi_version)") from e
    abi.restype = c_int32
    if abi() != ABI_VERSION:
        raise ImportError(f"visiongen: {cdll._name} has C ABI version {abi()}; "
                          f"this binding needs {ABI_VERSION}")
    _declare(cdll)
    return cdll


lib = load()


def text(value):
    """A `const char*` result as str ("" for NULL)."""
    return value.decode("utf-8", errors="replace") if value else ""


def utf8(value):
    """A str or os.PathLike argument as UTF-8 bytes; None stays None (NULL)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    return os.fsencode(value) if isinstance(value, os.PathLike) else str(value).encode("utf-8")
