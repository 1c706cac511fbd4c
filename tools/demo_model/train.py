"""Trains visiongen's demo model: a tiny Stable-Diffusion-style text-to-image
model (AutoencoderKL + UNet2DConditionModel + CLIPTextModel, diffusers folder
layout) that draws "a <colour> <shape> on a <colour> background" at 64x64.

    /usr/bin/python3 tools/demo_model/train.py --out models/visiongen-shapes \
        --tokenizer ../shared/fixtures/sd1-tiny/models/sd1-tiny/tokenizer --seed 0

CPU only, deterministic for a seed and thread count (default 2 threads).
"""
import argparse
import copy
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sd_modules as sd  # noqa: E402
import shapes  # noqa: E402
import st_io  # noqa: E402
from clip_bpe import ClipBpe  # noqa: E402

VAE_CFG = {
    "_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [16, 32, 64, 64],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 1,
    "norm_num_groups": 16, "sample_size": 64, "scaling_factor": 1.0,
}
TEXT_CFG = {
    "architectures": ["CLIPTextModel"], "model_type": "clip_text_model", "vocab_size": 49408,
    "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    "max_position_embeddings": 77, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
    "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407, "projection_dim": 32,
    "torch_dtype": "float32",
}
UNET_CFG = {
    "_class_name": "UNet2DConditionModel", "sample_size": 8, "in_channels": 4, "out_channels": 4,
    "block_out_channels": [64, 128], "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn", "cross_attention_dim": 32, "attention_head_dim": 8,
    "norm_num_groups": 32, "norm_eps": 1e-5, "act_fn": "silu", "flip_sin_to_cos": True, "freq_shift": 0,
    "use_linear_projection": False, "center_input_sample": False,
}
SCHED_CFG = {
    "_class_name": "EulerDiscreteScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085,
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "trained_betas": None, "prediction_type": "epsilon",
    "timestep_spacing": "leading", "steps_offset": 1, "interpolation_type": "linear",
    "use_karras_sigmas": False, "set_alpha_to_one": False, "clip_sample": False, "skip_prk_steps": True,
}


def images_to_tensor(imgs):
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def make_data(n, seed):
    rng = np.random.default_rng(seed)
    imgs, caps = [], []
    for _ in range(n):
        im, cap = shapes.sample(rng)
        imgs.append(im)
        caps.append(cap)
    return np.stack(imgs), caps


def lr_at(step, total, base, warm=100):
    if step < warm:
        return base * (step + 1) / warm
    return base * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def load_into(module, path):
    state = st_io.load(path)
    module.load_state_dict(state)
    return module


def train_vae(imgs, steps, batch, seed, log, resume=None, base_lr=1e-3):
    torch.manual_seed(seed)
    vae = sd.AutoencoderKL(VAE_CFG)
    if resume:
        load_into(vae, os.path.join(resume, "vae/diffusion_pytorch_model.safetensors"))
    opt = torch.optim.Adam(vae.parameters(), lr=base_lr)
    gen = torch.Generator().manual_seed(seed)
    x_all = images_to_tensor(imgs)
    t0 = time.time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, base_lr)
        idx = torch.randint(0, len(x_all), (batch,), generator=gen)
        x = x_all[idx]
        mean, logvar = vae.encode(x)
        std = torch.exp(0.5 * logvar)
        z = mean + std * torch.randn(mean.shape, generator=gen)
        rec = vae.decode(z)
        kl = 0.5 * (mean.pow(2) + std.pow(2) - 1 - logvar).mean()
        loss = F.mse_loss(rec, x) + 0.5 * F.l1_loss(rec, x) + 1e-5 * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"vae step {step}/{steps} loss {loss.item():.4f} kl {kl.item():.2f} ({time.time() - t0:.0f} s)")
    return vae.eval()


def alphas_cumprod():
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def train_diffusion(lat_mean, lat_std, ids, steps, batch, seed, log, resume=None, base_lr=5e-4):
    torch.manual_seed(seed)
    te = sd.ClipTextModel(TEXT_CFG)
    with torch.no_grad():
        te.text_model.embeddings.token_embedding.weight.normal_(0, 0.5)
        te.text_model.embeddings.position_embedding.weight.normal_(0, 0.1)
    unet = sd.UNet2DConditionModel(UNET_CFG)
    if resume:
        load_into(unet, os.path.join(resume, "unet/diffusion_pytorch_model.safetensors"))
        load_into(te, os.path.join(resume, "text_encoder/model.safetensors"))
    params = list(unet.parameters()) + list(te.parameters())
    opt = torch.optim.AdamW(params, lr=base_lr, weight_decay=0.0)
    ema_u, ema_t = copy.deepcopy(unet), copy.deepcopy(te)
    ac = alphas_cumprod()
    gen = torch.Generator().manual_seed(seed + 1)
    t0 = time.time()
    for step in range(steps):
        lr = lr_at(step, steps, base_lr)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, len(ids) - 1, (batch,), generator=gen)
        x0 = lat_mean[idx] + lat_std[idx] * torch.randn(lat_mean[idx].shape, generator=gen)
        tok = ids[idx].clone()
        drop = torch.rand(batch, generator=gen) < 0.1
        tok[drop] = ids[-1]  # the last row holds the empty prompt
        t = torch.randint(0, 1000, (batch,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        a = ac[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        pred = unet(xt, t, te(tok))
        loss = F.mse_loss(pred, eps)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for ema, live in ((ema_u, unet), (ema_t, te)):
                for pe, pl in zip(ema.parameters(), live.parameters()):
                    pe.mul_(decay).add_(pl, alpha=1 - decay)
        if step % 200 == 0 or step == steps - 1:
            log(f"unet step {step}/{steps} loss {loss.item():.4f} lr {lr:.2e} ({time.time() - t0:.0f} s)")
    return ema_u.eval(), ema_t.eval()


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def save(out, vae, te, unet, sf, tokenizer_dir):
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for sub in ("vae", "unet", "text_encoder", "tokenizer", "scheduler"):
        os.makedirs(os.path.join(tmp, sub))
    write_json(os.path.join(tmp, "model_index.json"), {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.27.2",
        "feature_extractor": [None, None], "safety_checker": [None, None], "image_encoder": [None, None],
        "requires_safety_checker": False, "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]})
    vcfg = dict(VAE_CFG, scaling_factor=sf)
    write_json(os.path.join(tmp, "vae/config.json"), vcfg)
    write_json(os.path.join(tmp, "unet/config.json"), UNET_CFG)
    write_json(os.path.join(tmp, "text_encoder/config.json"), TEXT_CFG)
    write_json(os.path.join(tmp, "scheduler/scheduler_config.json"), SCHED_CFG)
    st_io.save(os.path.join(tmp, "vae/diffusion_pytorch_model.safetensors"), vae.state_dict())
    st_io.save(os.path.join(tmp, "unet/diffusion_pytorch_model.safetensors"), unet.state_dict())
    st_io.save(os.path.join(tmp, "text_encoder/model.safetensors"), te.state_dict())
    for f in ("vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tokenizer_dir, f), os.path.join(tmp, "tokenizer", f))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer", required=True, help="CLIP tokenizer folder (vocab.json, merges.txt, ...)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=12000)
    ap.add_argument("--vae-steps", type=int, default=1200)
    ap.add_argument("--unet-steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--resume", help="continue from this model folder (a second, fine-tuning run)")
    ap.add_argument("--lr-scale", type=float, default=1.0, help="multiplies both learning rates")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    log = lambda s: print(s, flush=True)  # noqa: E731
    t0 = time.time()
    imgs, caps = make_data(a.images, a.seed)
    log(f"{len(imgs)} images rendered ({time.time() - t0:.0f} s)")
    vae = train_vae(imgs, a.vae_steps, 32, a.seed, log, a.resume, 1e-3 * a.lr_scale)
    with torch.no_grad():
        x = images_to_tensor(imgs)
        means, stds = [], []
        for i in range(0, len(x), 256):
            m, lv = vae.encode(x[i:i + 256])
            means.append(m)
            stds.append(torch.exp(0.5 * lv))
        lat_mean, lat_std = torch.cat(means), torch.cat(stds)
        sf = float(1.0 / lat_mean.std())
        rec = vae.decode(lat_mean[:256])
        log(f"latent std {lat_mean.std():.3f} -> scaling_factor {sf:.5f}; "
            f"reconstruction max-abs error (mean over images) {(rec - x[:256]).abs().amax(dim=(1, 2, 3)).mean():.3f}")
    bpe = ClipBpe(a.tokenizer)
    ids = torch.tensor([bpe.encode_padded(c) for c in caps] + [bpe.encode_padded("")], dtype=torch.long)
    unet, te = train_diffusion(lat_mean * sf, lat_std * sf, ids, a.unet_steps, a.batch, a.seed, log, a.resume,
                               5e-4 * a.lr_scale)
    save(a.out, vae, te, unet, sf, a.tokenizer)
    log(f"saved {a.out} ({time.time() - t0:.0f} s in all)")


if __name__ == "__main__":
    main()
