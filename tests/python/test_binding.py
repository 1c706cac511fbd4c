"""Tests of the Python binding (python/visiongen) against the built library.

    VG_LIBRARY=build/libvisiongen.so.0 VG_FIXTURES=../shared/fixtures \\
        python3 -m unittest discover -s tests/python -v

The whole module is skipped when the library cannot be found, the fixture
tests when $VG_FIXTURES (default: ../shared/fixtures beside the repository)
has no sd1-tiny; PIL and numpy tests when those are not importable.
"""

import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import unittest
import zlib

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(_REPO, "python"))  # the checkout's binding, not an installed one

try:
    import visiongen
except ImportError as e:
    if "cannot find" not in str(e) and "cannot load" not in str(e):
        raise  # a broken binding or library must fail, not skip
    raise unittest.SkipTest(f"libvisiongen.so.0 not found ({e})") from e

try:
    import numpy
except ImportError:
    numpy = None
try:
    import PIL.Image
except ImportError:
    PIL = None

FIXTURES = os.environ.get("VG_FIXTURES") or os.path.join(os.path.dirname(_REPO), "shared", "fixtures")
TINY = os.path.join(FIXTURES, "sd1-tiny")
TINY_MODEL = os.path.join(TINY, "models", "sd1-tiny")
REFERENCE = os.path.join(TINY, "txt2img", "extra", "euler_pipeline_drawn_noise_seed42_steps4_cfg7p5.png")
INIT_IMAGE = os.path.join(TINY, "inputs", "test_image_64.png")
MASK = os.path.join(TINY, "inputs", "test_mask_64.png")
PROMPT = "a photograph of an astronaut riding a horse"

needs_fixtures = unittest.skipUnless(os.path.isdir(TINY_MODEL), f"no sd1-tiny fixture under {FIXTURES}")


# ---- a PNG reader for when PIL is missing ----


def _unfilter(rows, stride, bpp):
    """PNG filters 0-4 undone, row by row (each row: filter byte + stride bytes)."""
    out = bytearray()
    prev = bytearray(stride)
    for i in range(0, len(rows), stride + 1):
        kind, line = rows[i], bytearray(rows[i + 1:i + 1 + stride])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + a) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + b) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
            elif kind != 0:
                raise ValueError(f"bad PNG filter {kind}")
        out += line
        prev = line
    return bytes(out)


def read_png(path):
    """(width, height, channels, pixels) of an 8-bit, non-interlaced grey,
    grey+alpha, RGB or RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(color)
    if depth != 8 or interlace or channels is None:
        raise ValueError(f"{path}: only 8-bit non-interlaced grey/RGB/RGBA PNGs are read here")
    return width, height, channels, _unfilter(zlib.decompress(idat), width * channels, channels)


def reference_pixels(path):
    """(width, height, RGB bytes) of a PNG, by PIL when it imports."""
    if PIL is not None:
        with PIL.Image.open(path) as im:
            im = im.convert("RGB")
            return im.width, im.height, im.tobytes()
    width, height, channels, pixels = read_png(path)
    if channels != 3:
        raise ValueError(f"{path}: expected an RGB reference")
    return width, height, pixels


def frac_within(a, b, tolerance):
    """The share of channel values (0..255) whose difference on the 0..1
    scale is at most tolerance (tests/test_util.h's frac_within)."""
    assert len(a) == len(b)
    limit = tolerance * 255
    return sum(abs(x - y) <= limit for x, y in zip(a, b)) / len(b)


# ---- tests that need only the library ----


class LibraryTest(unittest.TestCase):
    def test_version_and_abi(self):
        self.assertIsInstance(visiongen.version(), str)
        self.assertTrue(visiongen.version())
        self.assertEqual(visiongen.abi_version(), 1)

    def test_missing_model_raises_file_not_found(self):
        with self.assertRaises(visiongen.FileNotFound) as cm:
            visiongen.Engine("/nonexistent/visiongen-model")
        e = cm.exception
        self.assertIsInstance(e, visiongen.VisiongenError)
        self.assertEqual((e.code, e.name), (2, "file_not_found"))
        self.assertTrue(e.message)

    def test_params_json_reflects_keywords_and_extra(self):
        p = visiongen.params_json("a cat", negative_prompt="blurry", width=64, height=96, steps=4,
                                  cfg_scale=5.5, seed=42, sampler="dpmpp_2m", batch_size=2,
                                  clip_skip=2, rng="philox")
        self.assertEqual(p["prompt"], "a cat")
        self.assertEqual(p["negative_prompt"], "blurry")
        self.assertEqual((p["width"], p["height"], p["steps"], p["seed"]), (64, 96, 4, 42))
        self.assertAlmostEqual(p["cfg_scale"], 5.5)
        self.assertEqual(p["sampler"], "dpmpp_2m")
        self.assertEqual(p["batch_size"], 2)
        self.assertEqual(p["clip_skip"], 2)
        self.assertEqual(p["rng"], "philox")

    def test_params_json_defaults(self):
        p = visiongen.params_json()
        self.assertEqual(p["prompt"], "")
        self.assertEqual(p["seed"], -1)
        self.assertEqual(p["clip_skip"], 1)

    def test_unknown_extra_keyword_is_invalid_argument(self):
        with self.assertRaises(visiongen.InvalidArgument) as cm:
            visiongen.params_json("x", no_such_field=1)
        self.assertEqual((cm.exception.code, cm.exception.name), (1, "invalid_argument"))

    def test_out_of_range_int_is_refused_before_c(self):
        with self.assertRaises(OverflowError):
            visiongen.params_json("x", width=2**40)

    def test_library_found_from_the_install_prefix(self):
        # <prefix>/lib/python3/dist-packages/visiongen finds <prefix>/lib/<multiarch>/libvisiongen.so.0
        # with no VG_LIBRARY (links stand in for an installed copy).
        with tempfile.TemporaryDirectory() as prefix:
            site = os.path.join(prefix, "lib", "python3", "dist-packages")
            libdir = os.path.join(prefix, "lib", "x86_64-linux-gnu")
            os.makedirs(site)
            os.makedirs(libdir)
            os.symlink(os.path.dirname(os.path.abspath(visiongen.__file__)), os.path.join(site, "visiongen"))
            os.symlink(os.path.abspath(visiongen.library_path()), os.path.join(libdir, "libvisiongen.so.0"))
            env = {k: v for k, v in os.environ.items() if k not in ("VG_LIBRARY", "LD_LIBRARY_PATH")}
            env["PYTHONPATH"] = site
            out = subprocess.run([sys.executable, "-c", "import visiongen; print(visiongen.library_path())"],
                                 env=env, capture_output=True, text=True, cwd=prefix)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(out.stdout.strip(), os.path.join(libdir, "libvisiongen.so.0"))

    def test_image_save_and_open_round_trip(self):
        pixels = bytes(range(256)) * 12  # 32x32 RGB
        img = visiongen.Image(32, 32, 3, pixels)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "round.png")
            img.save(path, "Steps: 1")
            back = visiongen.Image.open(path)
            self.assertIn(back.channels, (3, 4))  # the library reads every file as RGBA8
            if back.channels == 4:
                self.assertEqual(back.pixels[3::4], b"\xff" * 32 * 32)
            self.assertEqual(back.to_rgb(), img)
            with open(path, "rb") as f:
                self.assertIn(b"Steps: 1", f.read())  # the infotext chunk
            self.assertEqual(read_png(path)[3], pixels)

    def test_image_rejects_a_wrong_buffer_size(self):
        with self.assertRaises(ValueError):
            visiongen.Image(4, 4, 3, b"\0" * 47)

    def test_open_missing_file_raises(self):
        with self.assertRaises(visiongen.VisiongenError) as cm:
            visiongen.Image.open("/nonexistent/picture.png")
        self.assertNotEqual(cm.exception.code, 0)


# ---- generation with the sd1-tiny fixture ----


@needs_fixtures
class TinyModelTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.engine = visiongen.Engine(TINY_MODEL)

    @classmethod
    def tearDownClass(cls):
        cls.engine.close()

    def generate(self, **kwargs):
        args = dict(prompt=PROMPT, steps=2, seed=7, width=64, height=64, output="image")
        args.update(kwargs)
        return self.engine.generate(**args)

    def test_info(self):
        info = self.engine.info
        self.assertEqual((info["name"], info["family"]), ("sd1-tiny", "sd1"))
        self.assertEqual((info["default_width"], info["default_height"]), (64, 64))
        self.assertNotEqual(65 % info["size_multiple"], 0)  # for test_bad_size_is_invalid_argument

    def test_seed_alone_reproduces_reference_png(self):
        # tests/pipeline_test.cpp Engine.SeedAloneReproducesReferencePng
        res = self.engine.generate(PROMPT, steps=4, cfg_scale=7.5, seed=42, width=64, height=64,
                                   output="image")
        self.assertEqual(len(res), 1)
        img = res[0]
        self.assertEqual((img.width, img.height, img.channels), (64, 64, 3))
        width, height, ref = reference_pixels(REFERENCE)
        self.assertEqual((width, height), (64, 64))
        self.assertGreaterEqual(frac_within(img.pixels, ref, 1.0 / 255 + 1e-6), 0.99)
        self.assertIn("Seed: 42", res.infotext[0])
        self.assertIn("Steps: 4, Sampler: euler, CFG scale: 7.5", res.infotext[0])
        self.assertEqual(res.seeds, [42])
        self.assertEqual(res.metadata["seeds"], [42])
        self.assertEqual(res.metadata["params"]["steps"], 4)
        self.assertEqual(res.videos, [])

    def test_bad_size_is_invalid_argument(self):
        with self.assertRaises(visiongen.VisiongenError) as cm:
            self.generate(width=65)
        e = cm.exception
        self.assertIsInstance(e, visiongen.InvalidArgument)
        self.assertEqual((e.code, e.name), (1, "invalid_argument"))
        self.assertTrue(e.message)

    def test_unknown_extra_keyword_fails_the_generation(self):
        with self.assertRaises(visiongen.InvalidArgument):
            self.generate(no_such_field=True)

    def test_progress_reports_steps(self):
        calls = []
        self.generate(progress=lambda stage, step, total: calls.append((stage, step, total)))
        denoise = [c for c in calls if c[0] == "denoise"]
        self.assertTrue(denoise, calls)
        self.assertEqual(denoise[-1][2], 2)

    def test_progress_returning_false_cancels(self):
        with self.assertRaises(visiongen.Cancelled) as cm:
            self.generate(progress=lambda stage, step, total: False)
        self.assertEqual((cm.exception.code, cm.exception.name), (10, "cancelled"))

    def test_cancel_event_cancels(self):
        event = threading.Event()
        event.set()
        with self.assertRaises(visiongen.Cancelled):
            self.generate(cancel=event)
        self.assertEqual(len(self.generate(cancel=threading.Event())), 1)  # unset: runs

    def test_cancel_callable_cancels(self):
        with self.assertRaises(visiongen.Cancelled):
            self.generate(cancel=lambda: True)

    def test_exception_in_progress_propagates(self):
        class Boom(Exception):
            pass

        def progress(stage, step, total):
            raise Boom("from progress")

        with self.assertRaises(Boom):
            self.generate(progress=progress)
        self.assertEqual(len(self.generate()), 1)  # the engine still works

    def test_exception_in_preview_propagates(self):
        def preview(image, step, total):
            raise KeyError("from preview")

        with self.assertRaises(KeyError):
            self.generate(preview=preview)

    def test_exception_in_cancel_propagates(self):
        def cancel():
            raise ZeroDivisionError

        with self.assertRaises(ZeroDivisionError):
            self.generate(cancel=cancel)

    @unittest.skipUnless(signal.getsignal(signal.SIGINT) is signal.default_int_handler,
                         "SIGINT has a handler of the test runner's")
    def test_ctrl_c_cancels_and_raises_keyboard_interrupt(self):
        def progress(stage, step, total):
            if stage == "denoise":
                os.kill(os.getpid(), signal.SIGINT)

        with self.assertRaises(KeyboardInterrupt):
            self.generate(steps=4, progress=progress)
        self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)

    def test_generate_from_another_thread(self):
        # Callbacks come on the generating thread; the GIL is free meanwhile.
        seen, out = set(), []
        worker = threading.Thread(target=lambda: out.append(
            self.generate(progress=lambda *a: seen.add(threading.get_ident()))))
        worker.start()
        worker.join()
        self.assertEqual(seen, {worker.ident})
        self.assertEqual(len(out[0]), 1)

    def test_preview_images(self):
        previews = []
        self.generate(steps=3, preview=lambda image, step, total: previews.append((image, step, total)))
        self.assertTrue(previews)
        image, step, total = previews[-1]
        self.assertIsInstance(image, visiongen.Image)
        self.assertEqual(total, 3)

    def test_batch(self):
        res = self.generate(batch_size=2)
        self.assertEqual(len(res), 2)
        self.assertEqual(len(res.seeds), 2)
        self.assertEqual(len(res.infotext), 2)
        self.assertNotEqual(res[0], res[1])

    def test_img2img(self):
        res = self.generate(init_image=INIT_IMAGE, strength=0.5)
        self.assertEqual(len(res), 1)
        self.assertEqual(res[0].size, (64, 64))

    def test_img2img_infotext_has_denoising_strength(self):
        # As the CLI writes it for an init image given as a file.
        res = self.generate(init_image=INIT_IMAGE, strength=0.5)
        self.assertIn("Denoising strength: 0.5", res.infotext[0])

    def test_img2img_from_an_image_object_matches_the_path(self):
        width, height, channels, pixels = read_png(INIT_IMAGE)
        self.assertEqual(channels, 3)
        from_path = self.generate(init_image=INIT_IMAGE, strength=0.5)
        from_object = self.generate(init_image=visiongen.Image(width, height, 3, pixels), strength=0.5)
        self.assertEqual(from_path[0], from_object[0])

    def test_inpaint(self):
        res = self.generate(init_image=INIT_IMAGE, mask=MASK, strength=0.5)
        self.assertEqual(len(res), 1)
        self.assertEqual(res[0].size, (64, 64))

    def test_mask_without_init_image_is_invalid(self):
        with self.assertRaises(visiongen.InvalidArgument):
            self.generate(mask=MASK)

    def test_params_json_on_the_engine(self):
        p = self.engine.params_json(PROMPT, steps=4, clip_skip=2, progress=print, output="numpy")
        self.assertEqual((p["prompt"], p["steps"], p["clip_skip"]), (PROMPT, 4, 2))

    def test_output_image_and_save(self):
        res = self.generate()
        self.assertIsInstance(res[0], visiongen.Image)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "out.png")
            res.save(path)
            self.assertEqual(visiongen.Image.open(path).to_rgb(), res[0])
            with open(path, "rb") as f:
                self.assertIn(b"Seed: 7", f.read())

    def test_output_raw_is_image(self):
        self.assertIsInstance(self.generate(output="raw")[0], visiongen.Image)

    def test_bad_output_form(self):
        with self.assertRaises(ValueError):
            self.generate(output="jpeg")

    @unittest.skipIf(numpy is None, "numpy is not installed")
    def test_output_numpy(self):
        res = self.generate(output="numpy")
        self.assertIsInstance(res[0], numpy.ndarray)
        self.assertEqual(res[0].shape, (64, 64, 3))
        self.assertEqual(res[0].dtype, numpy.uint8)
        # a numpy init image gives what the path gives
        array = visiongen.Image.open(INIT_IMAGE).to_numpy()
        a = self.generate(init_image=array, strength=0.5)
        b = self.generate(init_image=INIT_IMAGE, strength=0.5)
        self.assertEqual(a[0], b[0])

    @unittest.skipIf(PIL is None, "PIL is not installed")
    def test_output_pil(self):
        res = self.generate(output="pil")
        self.assertIsInstance(res[0], PIL.Image.Image)
        self.assertEqual((res[0].size, res[0].mode), ((64, 64), "RGB"))
        self.assertIn("Seed: 7", res[0].info["parameters"])
        self.assertIsInstance(self.generate(output="auto")[0], PIL.Image.Image)
        # PIL inputs (the grey mask included) give what the paths give
        with PIL.Image.open(INIT_IMAGE) as init, PIL.Image.open(MASK) as mask:
            a = self.generate(init_image=init, mask=mask, strength=0.5)
        b = self.generate(init_image=INIT_IMAGE, mask=MASK, strength=0.5)
        self.assertEqual(a[0], b[0])

    def test_generate_after_close_raises(self):
        engine = visiongen.Engine(TINY_MODEL)
        with engine:
            pass
        with self.assertRaises(ValueError):
            engine.generate(PROMPT, steps=1, width=64, height=64)


if __name__ == "__main__":
    unittest.main()
