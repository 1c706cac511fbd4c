"""The binding's own Image, and conversions to and from PIL and numpy.

PIL and numpy are optional: they are imported only when an output form asks
for them, and an input is recognised as theirs only when the caller has
already imported them (so no import happens just to check a type).
"""

import ctypes
import os
import sys

from . import _errors, _lib

OUTPUT_FORMS = ("auto", "pil", "numpy", "image", "raw")  # "raw" = "image"


class Image:
    """An RGB8 (channels 3) or RGBA8 (channels 4) picture, rows top to bottom.

    pixels: bytes, width * height * channels long.
    infotext: the A1111 "parameters" text of a generated image (else None);
    save() writes it into PNGs.
    """

    __slots__ = ("width", "height", "channels", "pixels", "infotext")

    def __init__(self, width, height, channels, pixels, infotext=None):
        if channels not in (3, 4):
            raise ValueError(f"channels must be 3 (RGB) or 4 (RGBA), not {channels}")
        if width <= 0 or height <= 0:
            raise ValueError(f"width and height must be positive, not {width}x{height}")
        pixels = bytes(pixels)
        if len(pixels) != width * height * channels:
            raise ValueError(f"pixels holds {len(pixels)} bytes; {width}x{height}x{channels} "
                             f"needs {width * height * channels}")
        self.width, self.height, self.channels = width, height, channels
        self.pixels = pixels
        self.infotext = infotext

    @property
    def size(self):
        """(width, height), as PIL says it."""
        return (self.width, self.height)

    @classmethod
    def open(cls, path):
        """Reads a PNG, JPEG or WebP file with the library (vg_image_load)."""
        image = _lib.VgImage()
        _errors.check(_lib.lib.vg_image_load(_lib.utf8(path), ctypes.byref(image)))
        try:
            return cls.from_c(image)
        finally:
            _lib.lib.vg_image_release(ctypes.byref(image))

    @classmethod
    def from_c(cls, image, infotext=None):
        """A copy of a vg_image's pixels (which the library owns)."""
        n = image.width * image.height * image.channels
        return cls(image.width, image.height, image.channels, ctypes.string_at(image.pixels, n), infotext)

    def save(self, path, infotext=None):
        """Writes PNG (with the infotext chunk), JPEG or WebP by the
        extension, atomically (vg_image_save). infotext None = self.infotext."""
        if infotext is None:
            infotext = self.infotext
        c_image, _keep = to_c(self)
        _errors.check(_lib.lib.vg_image_save(ctypes.byref(c_image), _lib.utf8(path), _lib.utf8(infotext)))

    def to_rgb(self):
        """This image without its alpha channel (itself when it has none).
        vg_image_load gives RGBA8 for every file, RGB ones included."""
        if self.channels == 3:
            return self
        rgb = bytearray(self.width * self.height * 3)
        for c in range(3):
            rgb[c::3] = self.pixels[c::4]
        return Image(self.width, self.height, 3, rgb, self.infotext)

    def to_pil(self):
        from PIL import Image as PILImage
        pil = PILImage.frombytes("RGB" if self.channels == 3 else "RGBA", self.size, self.pixels)
        if self.infotext:
            pil.info["parameters"] = self.infotext
        return pil

    def to_numpy(self):
        """A writable uint8 array of shape (height, width, channels)."""
        import numpy
        return numpy.frombuffer(self.pixels, dtype=numpy.uint8).reshape(
            self.height, self.width, self.channels).copy()

    def __eq__(self, other):
        if not isinstance(other, Image):
            return NotImplemented
        return (self.size, self.channels, self.pixels) == (other.size, other.channels, other.pixels)

    def __repr__(self):
        return f"<visiongen.Image {self.width}x{self.height} {'RGB' if self.channels == 3 else 'RGBA'}>"


# ---- inputs ----


def _loaded(module, attribute):
    """module.attribute when the caller has imported `module`, else None."""
    m = sys.modules.get(module)
    return getattr(m, attribute, None) if m is not None else None


def _from_pil(pil):
    has_alpha = pil.mode in ("RGBA", "LA", "PA") or "transparency" in pil.info
    mode = "RGBA" if has_alpha else "RGB"
    if pil.mode != mode:
        pil = pil.convert(mode)
    return Image(pil.width, pil.height, len(mode), pil.tobytes())


def _from_numpy(array):
    import numpy
    if array.dtype != numpy.uint8:
        raise TypeError(f"an image array must be uint8, not {array.dtype} (scale it to 0..255 first)")
    if array.ndim == 2:  # grey
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(f"an image array must be HxW, HxWx1, HxWx3 or HxWx4, not {array.shape}")
    if array.shape[2] == 1:
        array = numpy.repeat(array, 3, axis=2)
    height, width, channels = array.shape
    return Image(width, height, channels, numpy.ascontiguousarray(array).tobytes())


def as_image(value):
    """An Image from a path (str / os.PathLike: read by the library), a
    PIL.Image, a numpy uint8 array (HxW, HxWx3, HxWx4) or an Image."""
    if isinstance(value, Image):
        return value
    if isinstance(value, (str, os.PathLike)):
        return Image.open(value)
    pil_class = _loaded("PIL.Image", "Image")
    if pil_class is not None and isinstance(value, pil_class):
        return _from_pil(value)
    ndarray = _loaded("numpy", "ndarray")
    if ndarray is not None and isinstance(value, ndarray):
        return _from_numpy(value)
    raise TypeError("an image must be a path, a PIL.Image, a numpy uint8 array or a visiongen.Image, "
                    f"not {type(value).__name__}")


def to_c(image):
    """(vg_image, buffer): the vg_image points into `buffer`; keep both alive
    while the library may read it."""
    buffer = (ctypes.c_uint8 * len(image.pixels)).from_buffer_copy(image.pixels)
    c_image = _lib.VgImage(image.width, image.height, image.channels,
                           ctypes.cast(buffer, ctypes.POINTER(ctypes.c_uint8)))
    return c_image, buffer


# ---- outputs ----


def _importable(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def resolve_output(output):
    """"auto" -> "pil" when PIL imports, else "numpy" when numpy does, else
    "image"; "pil" / "numpy" are checked to import."""
    if output not in OUTPUT_FORMS:
        raise ValueError(f"output must be one of {', '.join(OUTPUT_FORMS)}, not {output!r}")
    if output == "raw":
        return "image"
    if output == "auto":
        if _importable("PIL.Image"):
            return "pil"
        return "numpy" if _importable("numpy") else "image"
    # Checked now rather than after the generation.
    module = {"pil": "PIL.Image", "numpy": "numpy"}.get(output)
    if module is not None and not _importable(module):
        raise ImportError(f"output={output!r} needs {module.split('.')[0]}, which does not import")
    return output


def convert(image, form):
    """An Image in the resolved output form ("pil", "numpy" or "image")."""
    if form == "pil":
        return image.to_pil()
    if form == "numpy":
        return image.to_numpy()
    return image
