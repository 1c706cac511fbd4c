"""Engine (a context and a loaded model), generation parameters, callbacks
and results."""

import contextlib
import ctypes
import json
import os
import signal
import threading
from ctypes import POINTER, byref

from . import _errors, _image, _lib
from ._lib import lib

_INT32 = (-2**31, 2**31 - 1)
_INT64 = (-2**63, 2**63 - 1)
# generate() keywords that params_json() accepts and ignores.
_RUN_ONLY = ("progress", "preview", "cancel", "output")


def _int(name, value, bounds=_INT32):
    """value as an int within bounds (ctypes would wrap it silently)."""
    try:
        n = value.__index__()
    except AttributeError:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}") from None
    if not bounds[0] <= n <= bounds[1]:
        raise OverflowError(f"{name}={n} is out of range")
    return n


def _format_loras(loras):
    """"name:weight,..." from a str, a {name: weight} mapping or an iterable
    of names and (name, weight) pairs."""
    if isinstance(loras, str):
        return loras
    items = loras.items() if hasattr(loras, "items") else loras
    parts = []
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            parts.append(os.fspath(item))
        else:
            name, weight = item
            parts.append(f"{os.fspath(name)}:{weight}")
    return ",".join(parts)


def _json_default(value):
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def build_params(prompt="", *, negative_prompt=None, width=0, height=0, steps=None, cfg_scale=None,
                 seed=-1, sampler=None, scheduler=None, batch_size=1, strength=None, init_image=None,
                 mask=None, guidance=None, frames=0, fps=0, preview_every=0, loras=None, task=None,
                 **extra):
    """(vg_params, keep): the struct from vg_params_init's defaults with the
    given fields set; `keep` holds the buffers it points to. Keywords not in
    the struct go into extra_json."""
    p = _lib.new_struct(_lib.VgParams, lib.vg_params_init_sized)
    keep = []
    p.prompt = _lib.utf8(prompt if prompt is not None else "")
    for name, value in (("negative_prompt", negative_prompt), ("sampler", sampler),
                        ("scheduler", scheduler), ("task", task)):
        if value is not None:
            setattr(p, name, _lib.utf8(value))
    p.width, p.height = _int("width", width), _int("height", height)
    p.batch_size = _int("batch_size", batch_size)
    p.frames = _int("frames", frames)
    p.preview_every = _int("preview_every", preview_every)
    p.seed = _int("seed", seed, _INT64)
    p.fps = float(fps)
    if steps is not None:
        p.steps = _int("steps", steps)
    for name, value in (("cfg_scale", cfg_scale), ("strength", strength), ("guidance", guidance)):
        if value is not None:
            setattr(p, name, float(value))
    for name, value in (("init_image", init_image), ("mask", mask)):
        if value is not None:
            c_image, buffer = _image.to_c(_image.as_image(value))
            keep += [c_image, buffer]
            setattr(p, name, ctypes.pointer(c_image))
    if loras is not None:
        p.loras = _lib.utf8(_format_loras(loras))
    # Keywords given explicitly also travel in extra_json, where every key
    # counts as given: a model's preset then never overrides them, even when
    # they equal the struct's default (the struct alone cannot tell).
    explicit = {name: value for name, value in (
        ("negative_prompt", negative_prompt), ("sampler", sampler), ("scheduler", scheduler),
        ("steps", steps), ("cfg_scale", cfg_scale), ("strength", strength),
        ("guidance", guidance)) if value is not None}
    extra = {**explicit, **extra}
    if extra:
        p.extra_json = json.dumps(extra, default=_json_default).encode("utf-8")
    return p, keep


def params_json(prompt="", **kwargs):
    """Every generation field as the engine would read it (vg_params_to_json),
    for the keywords of Engine.generate; needs no model. Raises
    InvalidArgument for unknown or malformed fields."""
    for name in _RUN_ONLY:
        kwargs.pop(name, None)
    params, _keep = build_params(prompt, **kwargs)
    out = ctypes.c_void_p()
    _errors.check(lib.vg_params_to_json(byref(params), byref(out)))
    try:
        return json.loads(ctypes.string_at(out.value).decode("utf-8"))
    finally:
        lib.vg_string_free(out)


class _CallbackBridge:
    """The C callbacks around the caller's progress / preview / cancel.

    No Python exception may unwind through C: the first one raised in a
    callback is kept in `error` (as is a Ctrl-C, see _sigint_cancels), the
    generation is cancelled at the next poll, and generate() raises it after
    the C call."""

    def __init__(self, progress, preview, cancel, form):
        self.error = None
        self._progress, self._preview, self._form = progress, preview, form
        if cancel is None:
            self._cancelled = None
        elif callable(getattr(cancel, "is_set", None)):  # threading.Event and the like
            self._cancelled = cancel.is_set
        elif callable(cancel):
            self._cancelled = cancel
        else:
            raise TypeError("cancel must be a threading.Event or a callable returning True to cancel")
        # The C function pointers stay valid only while these objects live.
        self._c_progress = _lib.PROGRESS_FN(self._on_progress)
        self._c_preview = _lib.PREVIEW_FN(self._on_preview)
        self._c_abort = _lib.ABORT_FN(self._on_abort)

    def struct(self):
        cb = _lib.new_struct(_lib.VgCallbacks, lib.vg_callbacks_init_sized)
        # The abort callback is always installed: it is where a kept error,
        # or a Ctrl-C arriving while the library works, stops the run.
        cb.abort = self._c_abort
        if self._progress is not None:
            cb.progress = self._c_progress
        if self._preview is not None:
            cb.preview = self._c_preview
        return cb

    def _on_abort(self, _user):
        if self.error is not None:
            return 1
        try:
            return 1 if self._cancelled is not None and self._cancelled() else 0
        except BaseException as e:  # generate() re-raises it
            self.error = e
            return 1

    def _on_progress(self, progress, _user):
        if self.error is not None:
            return 1
        try:
            p = progress.contents
            return 1 if self._progress(_lib.text(p.stage), p.step, p.total) is False else 0
        except BaseException as e:
            self.error = e
            return 1

    def _on_preview(self, image, step, total, _user):
        if self.error is not None:
            return
        try:
            self._preview(_image.convert(_image.Image.from_c(image.contents), self._form), step, total)
        except BaseException as e:
            self.error = e


@contextlib.contextmanager
def _sigint_cancels(bridge):
    """While the library works on the main thread, Ctrl-C cancels the run
    and generate() raises KeyboardInterrupt. Python's default handler would
    raise it on entering the next callback, before any try block, where
    ctypes can only print it; this handler just records it. A handler the
    program installed itself is left alone."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return

    def on_sigint(_signum, _frame):
        if bridge.error is None:
            bridge.error = KeyboardInterrupt()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Video(list):
    """One clip: its frames (in the output form), `.fps` and `.infotext`."""

    def __init__(self, frames, fps, infotext):
        super().__init__(frames)
        self.fps = fps
        self.infotext = infotext


class _Closing:
    """`with` support and freeing on garbage collection, for classes whose
    close() releases library handles."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: module globals may be gone
            pass


class Result(_Closing, list):
    """The images of one generation (in the output form), and:

    infotext: A1111 "parameters" text per image (video models: per clip).
    seeds: the seed of each image (or clip).
    metadata: dict of vg_result_metadata_json (params, seeds, warnings,
      sampling, timings).
    videos: list of Video (empty for image models).

    It keeps the library's result for save_video() until close() (or until
    it is garbage collected).
    """

    def __init__(self, images, infotext, seeds, metadata, videos, handle):
        super().__init__(images)
        self.infotext, self.seeds, self.metadata, self.videos = infotext, seeds, metadata, videos
        self._handle = handle

    @classmethod
    def _from_c(cls, res, form):
        """Copies everything out of the vg_result `res` (which it then owns)."""
        def image(getter, *index):
            c_image = _lib.VgImage()
            _errors.check(getter(res, *index, byref(c_image)))
            return _image.Image.from_c(c_image)

        n_images = lib.vg_result_image_count(res)
        n_videos = lib.vg_result_video_count(res)
        count = n_images or n_videos
        infotext = [_lib.text(lib.vg_result_infotext(res, i)) for i in range(count)]
        seeds = [lib.vg_result_seed(res, i) for i in range(count)]
        images = []
        for i in range(n_images):
            img = image(lib.vg_result_image, i)
            img.infotext = infotext[i]
            images.append(_image.convert(img, form))
        videos = []
        for v in range(n_videos):
            frames = [_image.convert(image(lib.vg_result_frame, v, f), form)
                      for f in range(lib.vg_result_frame_count(res, v))]
            videos.append(Video(frames, lib.vg_result_fps(res, v), infotext[v] if v < len(infotext) else ""))
        metadata = json.loads(_lib.text(lib.vg_result_metadata_json(res)) or "{}")
        return cls(images, infotext, seeds, metadata, videos, res)

    def save(self, path, index=0):
        """Writes image `index` with its infotext (PNG, JPEG or WebP by the extension)."""
        _image.as_image(self[index]).save(path, self.infotext[index] if index < len(self.infotext) else "")

    def save_video(self, path, index=0):
        """Encodes clip `index` (.mp4, .webm, .webp or .gif by the extension)."""
        if not self._handle:
            raise ValueError("the result is closed")
        _errors.check(lib.vg_result_save_video(self._handle, index, _lib.utf8(path)))

    def close(self):
        """Frees the library's result; the copied images stay usable."""
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            lib.vg_result_free(handle)


class Engine(_Closing):
    """A vg_context and one model loaded through it.

    model: a diffusers folder or a single .safetensors / .gguf checkpoint;
    None = the demo model. The other keywords are vg_load_options' fields
    (and data_dir, vg_context_params'). Handles are freed by close(), at the
    end of a `with` block, or when the Engine is garbage collected.
    """

    def __init__(self, model=None, *, precision=None, lora_mode=None, threads=0, tokenizer_dir=None,
                 config_dir=None, vae=None, unet=None, transformer=None, keep_text_encoder=False,
                 quant_compute=None, data_dir=None):
        self._lock = threading.Lock()  # close() waits for a running generate()
        self._ctx = self._model = None
        self._info = None
        cp = _lib.new_struct(_lib.VgContextParams, lib.vg_context_params_init_sized)
        cp.threads = _int("threads", threads)
        cp.data_dir = _lib.utf8(data_dir)
        ctx = POINTER(_lib.VgContext)()
        _errors.check(lib.vg_context_create(byref(cp), byref(ctx)))
        self._ctx = ctx
        opts = _lib.new_struct(_lib.VgLoadOptions, lib.vg_load_options_init_sized)
        for name, value in (("precision", precision), ("lora_mode", lora_mode),
                            ("quant_compute", quant_compute), ("tokenizer_dir", tokenizer_dir),
                            ("config_dir", config_dir), ("vae", vae), ("unet", unet),
                            ("transformer", transformer)):
            setattr(opts, name, _lib.utf8(value))
        opts.keep_text_encoder = 1 if keep_text_encoder else 0
        model_ptr = POINTER(_lib.VgModel)()
        status = lib.vg_model_load(ctx, _lib.utf8(model), byref(opts), byref(model_ptr))
        if status != 0:
            error = _errors.error_for(status)
            self.close()
            raise error
        self._model = model_ptr

    @property
    def info(self):
        """The model's description (vg_model_info_json): name, family, path,
        default_width, default_height, size_multiple, video, ..."""
        if self._info is None:
            self._info = json.loads(_lib.text(lib.vg_model_info_json(self._require_model())))
        return dict(self._info)

    @property
    def default_model(self):
        """The demo model's folder ("" when it is not installed)."""
        return _lib.text(lib.vg_context_default_model(self._ctx)) if self._ctx else ""

    def _require_model(self):
        if not self._model:
            raise ValueError("the Engine is closed")
        return self._model

    def generate(self, prompt="", *, negative_prompt=None, width=0, height=0, steps=None,
                 cfg_scale=None, seed=-1, sampler=None, scheduler=None, batch_size=1, strength=None,
                 init_image=None, mask=None, guidance=None, frames=0, fps=0, preview_every=0,
                 loras=None, task=None, progress=None, preview=None, cancel=None, output="auto",
                 **extra):
        """Runs one generation on the calling thread; returns a Result.

        None keeps the library's default. init_image / mask: a path, a
        PIL.Image, a numpy uint8 array or an Image. progress(stage, step,
        total): return False to cancel. preview(image, step, total): called
        every preview_every steps (1 when preview is given and preview_every
        is 0). cancel: a threading.Event or a callable, polled every step.
        output: "auto" | "pil" | "numpy" | "image" (or "raw"). Other keywords (clip_skip,
        rng, mode, ...) go to the library as extra_json.
        """
        form = _image.resolve_output(output)
        if preview is not None and preview_every == 0:
            preview_every = 1
        params, _keep = build_params(
            prompt, negative_prompt=negative_prompt, width=width, height=height, steps=steps,
            cfg_scale=cfg_scale, seed=seed, sampler=sampler, scheduler=scheduler,
            batch_size=batch_size, strength=strength, init_image=init_image, mask=mask,
            guidance=guidance, frames=frames, fps=fps, preview_every=preview_every, loras=loras,
            task=task, **extra)
        bridge = _CallbackBridge(progress, preview, cancel, form)
        callbacks = bridge.struct()
        res = POINTER(_lib.VgResult)()
        with self._lock, _sigint_cancels(bridge):
            status = lib.vg_generate(self._require_model(), byref(params), byref(callbacks), byref(res))
            error = _errors.error_for(status) if status != 0 else None
        if bridge.error is not None:
            if res:
                lib.vg_result_free(res)
            raise bridge.error
        if error is not None:
            raise error
        try:
            return Result._from_c(res, form)
        except BaseException:
            lib.vg_result_free(res)
            raise

    def params_json(self, prompt="", **kwargs):
        """The module's params_json(): the fields as the engine would read them."""
        return params_json(prompt, **kwargs)

    def close(self):
        """Frees the model and the context (waits for a running generate())."""
        lock = getattr(self, "_lock", None)
        if lock is None:  # __init__ did not get far
            return
        with lock:
            model, self._model = self._model, None
            ctx, self._ctx = self._ctx, None
            if model:
                lib.vg_model_free(model)
            if ctx:
                lib.vg_context_free(ctx)

    def __repr__(self):
        if not self._model:
            return "<visiongen.Engine closed>"
        info = self.info
        return f"<visiongen.Engine {info.get('name', '?')} ({info.get('family', '?')})>"
