"""VisiongenError and its subclasses, one per common vg_status."""

from . import _lib


class VisiongenError(Exception):
    """A failing visiongen call.

    code: the C vg_status (docs/errors.md), e.g. 1.
    name: its stable name (vg_status_name), e.g. "invalid_argument".
    message: what vg_last_error() said.
    """

    def __init__(self, code, name, message):
        super().__init__(code, name, message)  # args, so that it pickles
        self.code = code
        self.name = name
        self.message = message

    def __str__(self):
        return f"{self.message} [{self.name}]" if self.message else self.name


class InvalidArgument(VisiongenError):
    """VG_INVALID_ARGUMENT (1): a parameter is out of range or malformed."""


class FileNotFound(VisiongenError):
    """VG_FILE_NOT_FOUND (2)."""


class CorruptFile(VisiongenError):
    """VG_CORRUPT_FILE (3)."""


class UnsupportedFormat(VisiongenError):
    """VG_UNSUPPORTED_FORMAT (4)."""


class UnsupportedModel(VisiongenError):
    """VG_UNSUPPORTED_MODEL (5)."""


class MissingComponent(VisiongenError):
    """VG_MISSING_COMPONENT (6)."""


class OutOfMemory(VisiongenError):
    """VG_OUT_OF_MEMORY (8): the request or model would not fit."""


class Cancelled(VisiongenError):
    """VG_CANCELLED (10): a callback or `cancel` stopped the generation."""


class CapabilityNotSupported(VisiongenError):
    """VG_CAPABILITY_NOT_SUPPORTED (14): no engine runs this task for the model."""


class LoraNotFound(VisiongenError):
    """VG_LORA_NOT_FOUND (19)."""


class LoraIncompatible(VisiongenError):
    """VG_LORA_INCOMPATIBLE (20)."""


class DiskFull(VisiongenError):
    """VG_DISK_FULL (21): no space left while writing; nothing was left half-written."""


_BY_CODE = {
    1: InvalidArgument,
    2: FileNotFound,
    3: CorruptFile,
    4: UnsupportedFormat,
    5: UnsupportedModel,
    6: MissingComponent,
    8: OutOfMemory,
    10: Cancelled,
    14: CapabilityNotSupported,
    19: LoraNotFound,
    20: LoraIncompatible,
    21: DiskFull,
}


def error_for(status):
    """The exception for a failed call's status, with vg_last_error()'s
    message; call it right after the failing call, on the same thread."""
    lib = _lib.lib
    cls = _BY_CODE.get(status, VisiongenError)
    return cls(status, _lib.text(lib.vg_status_name(status)), _lib.text(lib.vg_last_error()))


def check(status):
    """Raises the matching VisiongenError unless status is VG_OK (0)."""
    if status != 0:
        raise error_for(status)
