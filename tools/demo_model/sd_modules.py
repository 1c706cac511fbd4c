"""Minimal PyTorch modules with diffusers/transformers parameter names and
semantics: CLIPTextModel, UNet2DConditionModel (SD 1.x layout) and
AutoencoderKL. Written for this project so the demo model can be trained
without the diffusers package; check_fixture.py proves they compute what
diffusers computes on ../shared/fixtures/sd1-tiny."""
import math

import torch
import torch.nn.functional as F
from torch import nn


class Linear(nn.Linear):
    """nn.Linear computed as a 1x1 convolution: Debian's torch has a generic
    BLAS (about 7 GFLOP/s) but oneDNN convolutions (50+ GFLOP/s). Same
    parameters and state-dict names as nn.Linear."""

    def forward(self, x):
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).t().reshape(1, shape[-1], -1, 1)
        y = F.conv2d(x2, self.weight[:, :, None, None], self.bias)
        return y.reshape(self.out_features, -1).t().reshape(*shape[:-1], self.out_features)


# --------------------------------------------------------------------- CLIP
class ClipAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.scale = heads, (d // heads) ** -0.5
        self.q_proj, self.k_proj = Linear(d, d), Linear(d, d)
        self.v_proj, self.out_proj = Linear(d, d), Linear(d, d)

    def forward(self, x, mask):
        b, t, d = x.shape
        h = self.heads
        q = (self.q_proj(x) * self.scale).view(b, t, h, -1).transpose(1, 2)
        k = self.k_proj(x).view(b, t, h, -1).transpose(1, 2)
        v = self.v_proj(x).view(b, t, h, -1).transpose(1, 2)
        w = torch.softmax(q @ k.transpose(-1, -2) + mask, dim=-1)
        return self.out_proj((w @ v).transpose(1, 2).reshape(b, t, d))


class ClipLayer(nn.Module):
    def __init__(self, d, heads, inner, act):
        super().__init__()
        self.self_attn = ClipAttention(d, heads)
        self.layer_norm1, self.layer_norm2 = nn.LayerNorm(d, eps=1e-5), nn.LayerNorm(d, eps=1e-5)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = Linear(d, inner), Linear(inner, d)
        self.act = act

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        h = self.mlp.fc1(self.layer_norm2(x))
        h = h * torch.sigmoid(1.702 * h) if self.act == "quick_gelu" else F.gelu(h)
        return x + self.mlp.fc2(h)


class ClipTextModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["hidden_size"]
        self.text_model = nn.Module()
        tm = self.text_model
        tm.embeddings = nn.Module()
        tm.embeddings.token_embedding = nn.Embedding(cfg["vocab_size"], d)
        tm.embeddings.position_embedding = nn.Embedding(cfg["max_position_embeddings"], d)
        tm.encoder = nn.Module()
        tm.encoder.layers = nn.ModuleList(
            ClipLayer(d, cfg["num_attention_heads"], cfg["intermediate_size"], cfg.get("hidden_act", "quick_gelu"))
            for _ in range(cfg["num_hidden_layers"]))
        tm.final_layer_norm = nn.LayerNorm(d, eps=cfg.get("layer_norm_eps", 1e-5))

    def forward(self, ids):
        tm = self.text_model
        t = ids.shape[1]
        x = tm.embeddings.token_embedding(ids) + tm.embeddings.position_embedding(torch.arange(t))
        mask = torch.full((t, t), float("-inf")).triu(1)
        for layer in tm.encoder.layers:
            x = layer(x, mask)
        return tm.final_layer_norm(x)


# --------------------------------------------------------------------- blocks
class Resnet(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        if temb:
            self.time_emb_proj = Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.conv_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if temb is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if hasattr(self, "conv_shortcut"):
            x = self.conv_shortcut(x)
        return x + h


class Attention(nn.Module):
    """diffusers Attention: to_q/to_k/to_v (+bias for the VAE), to_out.0."""

    def __init__(self, qdim, kdim, heads, bias=False):
        super().__init__()
        self.heads = heads
        self.to_q = Linear(qdim, qdim, bias=bias)
        self.to_k = Linear(kdim, qdim, bias=bias)
        self.to_v = Linear(kdim, qdim, bias=bias)
        self.to_out = nn.ModuleList([Linear(qdim, qdim)])

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        b, t, c = x.shape
        h = self.heads
        q = self.to_q(x).view(b, t, h, -1).transpose(1, 2)
        k = self.to_k(ctx).view(b, ctx.shape[1], h, -1).transpose(1, 2)
        v = self.to_v(ctx).view(b, ctx.shape[1], h, -1).transpose(1, 2)
        w = torch.softmax(q @ k.transpose(-1, -2) * (c // h) ** -0.5, dim=-1)
        return self.to_out[0]((w @ v).transpose(1, 2).reshape(b, t, c))


class TransformerBlock(nn.Module):
    def __init__(self, c, ctx_dim, heads):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(c), nn.LayerNorm(c), nn.LayerNorm(c)
        self.attn1 = Attention(c, c, heads)
        self.attn2 = Attention(c, ctx_dim, heads)
        self.ff = nn.Module()
        self.ff.net = nn.ModuleList([nn.Module(), nn.Identity(), Linear(4 * c, c)])
        self.ff.net[0].proj = Linear(c, 8 * c)

    def forward(self, x, ctx):
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), ctx)
        a, gate = self.ff.net[0].proj(self.norm3(x)).chunk(2, dim=-1)
        return x + self.ff.net[2](a * F.gelu(gate))


class SpatialTransformer(nn.Module):
    def __init__(self, c, ctx_dim, heads, groups, linear):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.linear = linear
        self.proj_in = Linear(c, c) if linear else nn.Conv2d(c, c, 1)
        self.transformer_blocks = nn.ModuleList([TransformerBlock(c, ctx_dim, heads)])
        self.proj_out = Linear(c, c) if linear else nn.Conv2d(c, c, 1)

    def forward(self, x, ctx):
        b, c, hh, ww = x.shape
        r = x
        x = self.norm(x)
        if not self.linear:
            x = self.proj_in(x)
        x = x.permute(0, 2, 3, 1).reshape(b, hh * ww, c)
        if self.linear:
            x = self.proj_in(x)
        for blk in self.transformer_blocks:
            x = blk(x, ctx)
        if self.linear:
            x = self.proj_out(x)
        x = x.reshape(b, hh, ww, c).permute(0, 3, 1, 2).contiguous()
        if not self.linear:
            x = self.proj_out(x)
        return x + r


class Down(nn.Module):
    def __init__(self, stride_pad):
        super().__init__()
        self.conv = None
        self.stride_pad = stride_pad

    def forward(self, x):
        if self.stride_pad == 0:  # VAE: asymmetric pad then no padding
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


def downsampler(c, vae):
    d = Down(0 if vae else 1)
    d.conv = nn.Conv2d(c, c, 3, stride=2, padding=0 if vae else 1)
    return d


class Up(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def timestep_embedding(t, dim, flip=True, shift=0.0):
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(0, half, dtype=torch.float32) / (half - shift)
    emb = t[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    return torch.cat([emb[:, half:], emb[:, :half]], dim=-1) if flip else emb


# --------------------------------------------------------------------- UNet
class UNet2DConditionModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        boc = cfg["block_out_channels"]
        n = len(boc)
        lpb, groups, eps = cfg["layers_per_block"], cfg.get("norm_num_groups", 32), cfg.get("norm_eps", 1e-5)
        heads = cfg.get("attention_head_dim", 8)
        heads = heads if isinstance(heads, list) else [heads] * n
        ctx, lin = cfg["cross_attention_dim"], cfg.get("use_linear_projection", False)
        temb = boc[0] * 4
        self.conv_in = nn.Conv2d(cfg["in_channels"], boc[0], 3, padding=1)
        self.time_embedding = nn.Module()
        self.time_embedding.linear_1, self.time_embedding.linear_2 = Linear(boc[0], temb), Linear(temb, temb)
        self.down_blocks = nn.ModuleList()
        out_c = boc[0]
        for i, kind in enumerate(cfg["down_block_types"]):
            in_c, out_c = out_c, boc[i]
            blk = nn.Module()
            blk.resnets = nn.ModuleList(Resnet(in_c if j == 0 else out_c, out_c, temb, groups, eps) for j in range(lpb))
            if kind.startswith("CrossAttn"):
                blk.attentions = nn.ModuleList(SpatialTransformer(out_c, ctx, heads[i], groups, lin) for _ in range(lpb))
            if i < n - 1:
                blk.downsamplers = nn.ModuleList([downsampler(out_c, False)])
            self.down_blocks.append(blk)
        self.mid_block = nn.Module()
        self.mid_block.resnets = nn.ModuleList(Resnet(boc[-1], boc[-1], temb, groups, eps) for _ in range(2))
        self.mid_block.attentions = nn.ModuleList([SpatialTransformer(boc[-1], ctx, heads[-1], groups, lin)])
        self.up_blocks = nn.ModuleList()
        rboc, rheads = list(reversed(boc)), list(reversed(heads))
        out_c = rboc[0]
        for i, kind in enumerate(cfg["up_block_types"]):
            prev, out_c, in_c = out_c, rboc[i], rboc[min(i + 1, n - 1)]
            blk = nn.Module()
            blk.resnets = nn.ModuleList(
                Resnet((prev if j == 0 else out_c) + (in_c if j == lpb else out_c), out_c, temb, groups, eps)
                for j in range(lpb + 1))
            if kind.startswith("CrossAttn"):
                blk.attentions = nn.ModuleList(SpatialTransformer(out_c, ctx, rheads[i], groups, lin) for _ in range(lpb + 1))
            if i < n - 1:
                blk.upsamplers = nn.ModuleList([Up(out_c)])
            self.up_blocks.append(blk)
        self.conv_norm_out = nn.GroupNorm(groups, boc[0], eps=eps)
        self.conv_out = nn.Conv2d(boc[0], cfg["out_channels"], 3, padding=1)

    def forward(self, x, t, ctx):
        if t.dim() == 0:
            t = t[None]
        t = t.expand(x.shape[0])
        temb = timestep_embedding(t, self.cfg["block_out_channels"][0], self.cfg.get("flip_sin_to_cos", True),
                                  self.cfg.get("freq_shift", 0))
        temb = self.time_embedding.linear_2(F.silu(self.time_embedding.linear_1(temb)))
        h = self.conv_in(x)
        skips = [h]
        for blk in self.down_blocks:
            for j, r in enumerate(blk.resnets):
                h = r(h, temb)
                if hasattr(blk, "attentions"):
                    h = blk.attentions[j](h, ctx)
                skips.append(h)
            if hasattr(blk, "downsamplers"):
                h = blk.downsamplers[0](h)
                skips.append(h)
        h = self.mid_block.resnets[0](h, temb)
        h = self.mid_block.attentions[0](h, ctx)
        h = self.mid_block.resnets[1](h, temb)
        for blk in self.up_blocks:
            for j, r in enumerate(blk.resnets):
                h = r(torch.cat([h, skips.pop()], dim=1), temb)
                if hasattr(blk, "attentions"):
                    h = blk.attentions[j](h, ctx)
            if hasattr(blk, "upsamplers"):
                h = blk.upsamplers[0](h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


# --------------------------------------------------------------------- VAE
class VaeAttention(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.to_q, self.to_k, self.to_v = Linear(c, c), Linear(c, c), Linear(c, c)
        self.to_out = nn.ModuleList([Linear(c, c)])

    def forward(self, x):
        b, c, h, w = x.shape
        t = self.group_norm(x).view(b, c, h * w).transpose(1, 2)
        q, k, v = self.to_q(t), self.to_k(t), self.to_v(t)
        a = torch.softmax(q @ k.transpose(-1, -2) * c ** -0.5, dim=-1) @ v
        return self.to_out[0](a).transpose(1, 2).reshape(b, c, h, w) + x


class VaeMid(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.resnets = nn.ModuleList(Resnet(c, c, 0, groups, 1e-6) for _ in range(2))
        self.attentions = nn.ModuleList([VaeAttention(c, groups)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        boc, lpb, g = cfg["block_out_channels"], cfg["layers_per_block"], cfg.get("norm_num_groups", 32)
        self.conv_in = nn.Conv2d(cfg["in_channels"], boc[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        out_c = boc[0]
        for i in range(len(boc)):
            in_c, out_c = out_c, boc[i]
            blk = nn.Module()
            blk.resnets = nn.ModuleList(Resnet(in_c if j == 0 else out_c, out_c, 0, g, 1e-6) for j in range(lpb))
            if i < len(boc) - 1:
                blk.downsamplers = nn.ModuleList([downsampler(out_c, True)])
            self.down_blocks.append(blk)
        self.mid_block = VaeMid(boc[-1], g)
        self.conv_norm_out = nn.GroupNorm(g, boc[-1], eps=1e-6)
        self.conv_out = nn.Conv2d(boc[-1], 2 * cfg["latent_channels"], 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for blk in self.down_blocks:
            for r in blk.resnets:
                h = r(h)
            if hasattr(blk, "downsamplers"):
                h = blk.downsamplers[0](h)
        return self.conv_out(F.silu(self.conv_norm_out(self.mid_block(h))))


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        boc, lpb, g = cfg["block_out_channels"], cfg["layers_per_block"], cfg.get("norm_num_groups", 32)
        rboc = list(reversed(boc))
        self.conv_in = nn.Conv2d(cfg["latent_channels"], rboc[0], 3, padding=1)
        self.mid_block = VaeMid(rboc[0], g)
        self.up_blocks = nn.ModuleList()
        out_c = rboc[0]
        for i in range(len(boc)):
            prev, out_c = out_c, rboc[i]
            blk = nn.Module()
            blk.resnets = nn.ModuleList(Resnet(prev if j == 0 else out_c, out_c, 0, g, 1e-6) for j in range(lpb + 1))
            if i < len(boc) - 1:
                blk.upsamplers = nn.ModuleList([Up(out_c)])
            self.up_blocks.append(blk)
        self.conv_norm_out = nn.GroupNorm(g, boc[0], eps=1e-6)
        self.conv_out = nn.Conv2d(boc[0], cfg["out_channels"], 3, padding=1)

    def forward(self, z):
        h = self.mid_block(self.conv_in(z))
        for blk in self.up_blocks:
            for r in blk.resnets:
                h = r(h)
            if hasattr(blk, "upsamplers"):
                h = blk.upsamplers[0](h)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class AutoencoderKL(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        lc = cfg["latent_channels"]
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)
        self.quant_conv, self.post_quant_conv = nn.Conv2d(2 * lc, 2 * lc, 1), nn.Conv2d(lc, lc, 1)

    def encode(self, x):
        """Returns (mean, logvar) of the posterior."""
        m = self.quant_conv(self.encoder(x))
        mean, logvar = m.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))
