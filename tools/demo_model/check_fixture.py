"""Loads ../shared/fixtures/sd1-tiny with sd_modules and checks every stored
reference output (text encoder, UNet, inpaint UNet, VAE decode/encode).
Exit status 0 = the modules compute what diffusers/transformers compute.

    python3 tools/demo_model/check_fixture.py [FIXTURES_DIR]
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sd_modules as sd  # noqa: E402
import st_io  # noqa: E402


def load_model(cls, folder, weights):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    m = cls(cfg)
    state = st_io.load(os.path.join(folder, weights))
    state = {k: v for k, v in state.items() if not k.endswith("position_ids")}
    missing, unexpected = m.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SystemExit(f"{folder}: missing {missing[:5]} unexpected {unexpected[:5]}")
    return m.eval()


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../../shared/fixtures")
    tiny = os.path.join(root, "sd1-tiny")
    models = os.path.join(tiny, "models")
    worst = {}
    torch.set_grad_enabled(False)
    te = load_model(sd.ClipTextModel, os.path.join(models, "sd1-tiny/text_encoder"), "model.safetensors")
    ref = st_io.load(os.path.join(tiny, "text_encoder/text_encoder.safetensors"))
    for k in ref:
        if k.endswith(".last_hidden_state"):
            case = k[: -len(".last_hidden_state")]
            worst[k] = rel(te(ref[case + ".input_ids"].long()), ref[k])
    for name, file, prefix in (("sd1-tiny", "unet.safetensors", "unet"), ("sd1-tiny-inpaint", "unet_inpaint.safetensors", "unet_inpaint")):
        unet = load_model(sd.UNet2DConditionModel, os.path.join(models, name, "unet"), "diffusion_pytorch_model.safetensors")
        ref = st_io.load(os.path.join(tiny, "unet", file))
        for k in ref:
            if k.endswith(".out"):
                c = k[:-4]
                g = c[: c.rindex(".t")]
                t = ref[c + ".timestep"]
                t = t.long() if bool((t == t.round()).all()) else t
                worst[k] = rel(unet(ref[g + ".sample"], t, ref[g + ".encoder_hidden_states"]), ref[k])
    vae = load_model(sd.AutoencoderKL, os.path.join(models, "sd1-tiny/vae"), "diffusion_pytorch_model.safetensors")
    ref = st_io.load(os.path.join(tiny, "vae/vae.safetensors"))
    worst["decode.image"] = rel(vae.decode(ref["decode.decoder_input"]), ref["decode.image"])
    mean, logvar = vae.encode(ref["encode.image"])
    worst["encode.mean"] = rel(mean, ref["encode.mean"])
    worst["encode.logvar"] = rel(logvar, ref["encode.logvar"])
    bad = {k: v for k, v in worst.items() if not v <= 1e-4}
    print(f"checked {len(worst)} reference outputs; worst relative error {max(worst.values()):.2e}")
    if bad:
        for k, v in sorted(bad.items()):
            print(f"MISMATCH {k}: {v:.3e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
