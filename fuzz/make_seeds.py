#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora (fuzz/corpus/NAME/*): small valid inputs
of each format, so libFuzzer starts past the magic bytes. Deterministic;
rerun after changing it: python3 fuzz/make_seeds.py (Debian's /usr/bin/python3 with python3-pil)."""
import io
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(name, file, data):
    os.makedirs(os.path.join(ROOT, name), exist_ok=True)
    with open(os.path.join(ROOT, name, file), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))


def safetensors(tensors, metadata=None):
    """tensors: name -> (dtype, shape, raw bytes)."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def f32(*values):
    return struct.pack("<%df" % len(values), *values)


def gguf(kvs, tensors, alignment=32):
    """kvs: (key, type id, packed value); tensors: (name, dims, ggml type, raw)."""
    def s(text):
        b = text.encode()
        return struct.pack("<Q", len(b)) + b
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for key, t, packed in kvs:
        out += s(key) + struct.pack("<I", t) + packed
    offset, datas = 0, []
    for name, dims, gtype, raw in tensors:
        out += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", gtype, offset)
        pad = -len(raw) % alignment
        datas.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    out += b"\0" * (-len(out) % alignment)
    return out + b"".join(datas)


def q8_0_block(scale_f16_bits, qs):
    return struct.pack("<H", scale_f16_bits) + bytes(q & 0xFF for q in qs)


def main():
    # safetensors
    put("safetensors", "f32.safetensors", safetensors({"a": ("F32", [2, 2], f32(1, 2, 3, 4))}))
    put("safetensors", "mixed.safetensors", safetensors({
        "h": ("F16", [3], struct.pack("<3H", 0x3C00, 0xC000, 0x0001)),
        "b": ("BF16", [2], struct.pack("<2H", 0x3F80, 0x7F80)),
        "i": ("I64", [1, 2], struct.pack("<2q", -1, 7)),
        "e": ("F32", [0], b""),
    }, {"format": "pt", "note": "seed"}))
    # GGUF (v3): a string and a u32 KV, an F32 and a Q8_0 tensor
    kvs = [("general.architecture", 8, struct.pack("<Q", 2) + b"sd"),
           ("general.alignment", 4, struct.pack("<I", 32)),
           ("list", 9, struct.pack("<IQ", 4, 2) + struct.pack("<2I", 1, 2))]
    q8 = q8_0_block(0x3C00, list(range(-16, 16)))
    put("gguf", "small.gguf", gguf(kvs, [("w.f32", [4], 0, f32(1, -2, 3, -4)), ("w.q8", [32], 8, q8)]))
    put("gguf", "f16.gguf", gguf(kvs[:1], [("h", [2, 2], 1, struct.pack("<4H", 0x3C00, 0, 0x8000, 0x7BFF))]))
    # images
    try:
        from PIL import Image
        img = Image.new("RGB", (5, 3), (200, 30, 60))
        img.putpixel((1, 1), (0, 255, 0))
        for fmt, mode, ext in (("PNG", "RGB", "png"), ("PNG", "RGBA", "rgba.png"), ("PNG", "L", "gray.png"),
                               ("PNG", "P", "palette.png"), ("PNG", "I", "16bit.png"),
                               ("JPEG", "RGB", "jpg"), ("WEBP", "RGB", "webp"), ("WEBP", "RGBA", "rgba.webp")):
            buf = io.BytesIO()
            src = img.convert("L").convert("I") if mode == "I" else img.convert(mode)
            src.save(buf, fmt, **({"quality": 50} if fmt == "JPEG" else {}))
            put("image", "seed." + ext, buf.getvalue())
    except ImportError:
        print("python3-pil is missing: image seeds not written")
    # request bodies
    for i, body in enumerate([
            {"prompt": "a red star", "width": 64, "height": 64, "steps": 4, "seed": 42, "sampler": "euler"},
            {"prompt": "x", "negative_prompt": "y", "cfg_scale": 1.5, "batch_size": 2, "mode": "turbo",
             "loras": "style:0.8", "init_image": "a.png", "strength": 0.5, "mask": "m.png", "mask_blur": 4},
            {"prompt": "v", "task": "text_to_video", "frames": 17, "fps": 16, "guidance": 3.5, "strict": True,
             "original_size": "1024x1024", "crop_coords": "0,0", "skip_layers": "7,8,9"},
            {"prompt": None, "width": -1, "steps": 1e9, "unknown": [1, {"a": []}]}]):
        put("params_json", "body%d.json" % i, json.dumps(body))
    # YAML: first byte odd = A1111 checkpoint yaml, even = preset
    put("yaml", "a1111.yaml", "\x01model:\n  params:\n    parameterization: \"v\"\n    unet_config:\n"
        "      params:\n        num_heads: -1\n        num_head_channels: 64\n")
    presets = os.path.join(os.path.dirname(ROOT), "..", "data", "presets")
    for f in sorted(os.listdir(presets))[:4]:
        with open(os.path.join(presets, f)) as fh:
            put("yaml", "preset_" + f, "\x00" + fh.read())
    # registry: one entry of the real file
    with open(os.path.join(os.path.dirname(ROOT), "..", "data", "registry", "models.json")) as fh:
        reg = json.load(fh)
    small = {k: v for k, v in reg.items() if not isinstance(v, list)}
    for k, v in reg.items():
        if isinstance(v, list):
            small[k] = v[:2]
    put("registry", "models.json", json.dumps(small, indent=1))
    # LoRA files: kohya (with alpha and a conv), PEFT, LyCORIS LoHa
    down, up = f32(*[0.1] * 8), f32(*[0.2] * 8)
    put("lora", "kohya.safetensors", safetensors({
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": ("F32", [2, 4], down),
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": ("F32", [4, 2], up),
        "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": ("F32", [], f32(1.0)),
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": ("F32", [1, 8], down),
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": ("F32", [8, 1], up),
        "lora_unet_conv_in.lora_down.weight": ("F32", [2, 4, 1, 1], down),
        "lora_unet_conv_in.lora_up.weight": ("F32", [4, 2, 1, 1], up),
    }, {"ss_network_module": "networks.lora"}))
    put("lora", "peft.safetensors", safetensors({
        "unet.down_blocks.0.attentions.0.proj_in.lora_A.weight": ("F32", [2, 4], down),
        "unet.down_blocks.0.attentions.0.proj_in.lora_B.weight": ("F32", [4, 2], up),
    }, {"lora_alpha": "2"}))
    put("lora", "loha.safetensors", safetensors({
        "lora_unet_mid_block_attentions_0_proj_out.hada_w1_a": ("F32", [4, 2], down),
        "lora_unet_mid_block_attentions_0_proj_out.hada_w1_b": ("F32", [2, 4], up),
        "lora_unet_mid_block_attentions_0_proj_out.hada_w2_a": ("F32", [4, 2], down),
        "lora_unet_mid_block_attentions_0_proj_out.hada_w2_b": ("F32", [2, 4], up),
        "lora_unet_mid_block_attentions_0_proj_out.alpha": ("F32", [], f32(2.0)),
    }))
    # prompts
    for i, p in enumerate(["a (red:1.3) star, [blue] background BREAK ((detailed)) <lora:x:0.5>",
                           "caf\u00c3\u00a9 &amp; &#x1F600; \u201cquotes\u201d \uff21\ufb01 \x07\r\n end",
                           "\\(escaped\\) (unbalanced [ ( :-1.5) " + "word, " * 60,
                           "\u4e00\u4e8c\u4e09 \U0001F600 emoji, \u0301combining"]):
        put("prompt", "prompt%d.txt" % i, p)
        put("tokenizers", "prompt%d.txt" % i, p)  # the same texts through T5/UMT5/Qwen
    put("tokenizers", "multilingual.txt",
        "Ein Fuchs im Schnee, \u6771\u4eac\u306e\u591c\u666f, \u00e9moji \U0001F98A and <tags> \u2581spaces\t\n")
    request_seeds()


def tiny_png(text=None):
    """A 4x3 RGBA PNG (written here: no PIL needed), with an A1111 "parameters"
    tEXt chunk if given."""
    import zlib

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    rows = b"".join(b"\0" + bytes([10, 200, 30, 128]) * 4 for _ in range(3))
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 3, 8, 6, 0, 0, 0))
    if text is not None:
        out += chunk(b"tEXt", b"parameters\0" + text.encode("latin-1"))
    return out + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def request_seeds():
    """Bodies of the OpenAI and sdapi routes; the first byte picks the model family
    (and for sdapi_body the route: byte // 5 % 3 = txt2img, img2img, png-info)."""
    import base64
    infotexts = ["a red fox, (detailed:1.2)\nsecond line\nNegative prompt: blurry, ugly\n"
                 "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 42, Size: 512x768, "
                 "Model hash: abcdef0123, Model: \"my model, v1\", Lora hashes: \"a: 1, b: 2\", Version: v1.10",
                 "only a prompt\nStyle: oil, Mood: calm",
                 "p\nSteps: 4, Sampler: \"x\\\"y\", Empty: , Size: 64x64x2, Denoising strength: 0.5, K:\"\"",
                 "\n\n  Negative prompt:\nNegative prompt: n\n Steps:1,Seed:2,Size:3x4 "]
    for i, t in enumerate(infotexts):
        put("infotext", "info%d.txt" % i, t)
    put("infotext", "roundtrip.txt", "a cat\nin a hat\x01blurry\x01Euler, a")
    for i, (family, body) in enumerate([
            (0, {"model": "dall-e-3", "prompt": "a cat", "n": 2, "size": "64x64", "seed": 3, "steps": "4",
                 "response_format": "b64_json", "negative_prompt": "dog", "cfg_scale": "6.5"}),
            (2, {"prompt": "x", "guidance_scale": 3.5, "true_cfg_scale": 1, "strength": 0.5, "sampler": "euler",
                 "scheduler": "karras", "extra": {"clip_skip": 2, "loras": "s:0.5"}}),
            (3, {"prompt": "z", "guidance_scale": "4", "size": "auto", "seed": "18446744073709551615"}),
            (4, {"prompt": "q", "n": 1e30, "steps": [1], "guidance": {"a": 1}})]):
        put("openai_body", "body%d.json" % i, bytes([family]) + json.dumps(body).encode())
    png = tiny_png("a cat\nSteps: 2, Sampler: Euler a, Seed: 7, Size: 4x3")
    b64 = base64.b64encode(png).decode()
    for i, (sel, body) in enumerate([
            (0, {"prompt": "a cat", "negative_prompt": "dog", "steps": 20, "width": 64, "height": 64, "seed": -1,
                 "sampler_name": "DPM++ 2M Karras", "batch_size": 2, "n_iter": 2, "cfg_scale": 7.5,
                 "override_settings": {"sd_model_checkpoint": "m", "CLIP_stop_at_last_layers": 2}}),
            (2, {"prompt": "f", "distilled_cfg_scale": 3.5, "scheduler": "simple", "eta": 0.5, "s_churn": 0.1}),
            (5, {"init_images": [b64], "prompt": "x", "denoising_strength": 0.5, "resize_mode": 1,
                 "mask": "data:image/png;base64," + b64, "mask_blur": 2, "inpainting_mask_invert": 1,
                 "inpaint_full_res": True, "inpaint_full_res_padding": 8}),
            (8, {"init_images": ["AAAA"], "steps": 20.5, "width": "64"}),
            (10, {"image": "data:image/png;base64," + b64}),
            (11, {"image": ""})]):
        put("sdapi_body", "body%d.json" % i, bytes([sel]) + json.dumps(body).encode())
    mp = b"prompt=a dog--vg\nn=1--vg\nsteps=4--vg\nstrength=0.5--vg\nimage@=" + png
    put("multipart", "edit.bin", b"\x00" + mp)
    put("multipart", "mask.bin", b"\x02" + mp + b"--vg\nmask@=" + png + b"--vg\nguidance_scale=3")
    put("multipart", "list.bin", b"\x03prompt=x--vg\nimage[]@=" + png + b"--vg\nseed=abc--vg\nsize=64x64")


if __name__ == "__main__":
    main()
