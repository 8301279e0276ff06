"""HTS-AT audio encoder with the locality-aware block (LAB) of MGA-CLAP.

Reads top to bottom: spectrogram-to-image folding, the locality-aware block, window attention, a Swin
stage, the model. Swin blocks, patch embedding and patch merging come from timm; module and parameter
names equal the reference's, so its checkpoints load directly (see `models.checkpoint`).

Two CPU inference speed paths, each a switch that changes numbers only by float rounding:
- window attention: each block's timm WindowAttention is replaced, right after the block is built, by
  a `BatchedWindowAttention` holding the same Parameters (fused SDPA; in CPU float32 inference two
  batched matmuls, with the relative position bias from our `relative_position_bias`);
  `fused_attention` / `models.speed.set_fused_attention` switch between it and the explicit softmax.
- `onednn_linear`: after initialisation, `models.onednn_linear.set_onednn_linear` replaces the
  `nn.Linear` layers by `OneDNNLinear` layers holding the same Parameters (GELU fused into fc1).

Shapes (paper size, 10 s at 32 kHz): waveform [B, 320000] -> log-mel [B, 1, 1001, 64] -> image
[B, 1, 256, 256] -> tokens 64 x 64 x 96 -> ... -> 8 x 8 x 768 -> frames [B, 32, 768], clip [B, 768].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed
from timm.models.swin_transformer import PatchMerging, SwinTransformerBlock, WindowAttention
from torch import nn

from models.audio_frontend import LogMelFrontend, SpecAugment
from models.onednn_linear import OneDNNLinear, is_cpu_float32_inference, set_onednn_linear
from models.onednn_linear import linear as onednn_or_plain_linear


def fold_spectrogram_to_image(log_mel: torch.Tensor, spec_size: int) -> torch.Tensor:
    """[B, 1, T, M] log-mel -> [B, 1, spec_size, spec_size] image, as HTS-AT does.

    T is stretched to spec_size * (spec_size // M) frames by bicubic interpolation (align_corners);
    the frames are cut into spec_size // M consecutive chunks that are stacked along the frequency
    axis: image row = chunk * M + mel bin, column = frame within the chunk.
    """
    batch, channels, frames, mels = log_mel.shape
    chunks = spec_size // mels
    target_frames = spec_size * chunks
    if frames > target_frames:
        raise ValueError(
            f"the audio gives {frames} spectrogram frames but the encoder takes at most {target_frames} "
            f"(about {target_frames - 1} hops); cut long audio into windows first "
            f"(ASE.encode_long_audio does this)")
    if frames < target_frames:
        log_mel = F.interpolate(log_mel, (target_frames, mels), mode="bicubic", align_corners=True)
    image = log_mel.permute(0, 1, 3, 2).reshape(batch, channels, mels, chunks, spec_size)
    return image.permute(0, 1, 3, 2, 4).reshape(batch, channels, chunks * mels, spec_size)


def unfold_grid_to_frames(grid: torch.Tensor, chunks: int) -> torch.Tensor:
    """[B, R, W, C] final token grid -> [B, C, R // chunks, chunks * W] in time order.

    Grid row r = chunk * (R // chunks) + frequency group; frame t = chunk * W + column.
    """
    batch, rows, cols, channels = grid.shape
    freq_groups = rows // chunks
    grid = grid.permute(0, 3, 1, 2).reshape(batch, channels, chunks, freq_groups, cols)
    return grid.permute(0, 1, 3, 2, 4).reshape(batch, channels, freq_groups, chunks * cols)


def locality_aware_output(block: SwinTransformerBlock, block_input: torch.Tensor,
                          drop_path: bool = True) -> torch.Tensor:
    """The LAB: y = x + DP(proj(V(norm1(x)))); return y + DP(norm2(y)).

    Attention between tokens is replaced by each token's own value, so frames keep local detail.
    `block_input` [B, H, W, C] -> [B, H, W, C]. Uses the block's own qkv, proj, norm1 and norm2, and its
    own stochastic depth (DP: drop_path1, then drop_path2, each drawing its own per-example mask in
    training and the identity in eval mode), as the reference; `drop_path=False` leaves DP out.
    """
    dim = block_input.shape[-1]
    qkv = block.attn.qkv
    project = onednn_or_plain_linear if isinstance(qkv, OneDNNLinear) else F.linear
    values = project(block.norm1(block_input), qkv.weight[2 * dim:], qkv.bias[2 * dim:] if qkv.bias is not None
                     else None)
    drop_value_branch = block.drop_path1 if drop_path else nn.Identity()
    drop_norm_branch = block.drop_path2 if drop_path else nn.Identity()
    mixed = block_input + drop_value_branch(block.attn.proj(values))
    return mixed + drop_norm_branch(block.norm2(mixed))


def relative_position_bias(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Swin's relative position bias: bias[h, i, j] = table[index[i, j], h].

    table [(2 Wh - 1) * (2 Ww - 1), heads] (the learnt `relative_position_bias_table`), index [N, N]
    (`relative_position_index`, N = Wh * Ww tokens per window) -> [heads, N, N].
    """
    tokens = index.shape[0]
    return table[index.reshape(-1)].view(tokens, tokens, -1).permute(2, 0, 1)


class BatchedWindowAttention(WindowAttention):
    """timm's WindowAttention whose CPU float32 inference (with `fused_attn` on) runs every window and
    head as one `baddbmm` (scores + relative position bias + shift mask) and one `bmm`.

    The numbers equal timm's (fused SDPA or explicit) to float rounding; whether it is faster than
    torch's CPU flash-attention kernel for 64-token windows depends on the torch build and the CPU.
    Training, CUDA and autocast use timm's forward (fused SDPA, or the explicit path with `fused_attn`
    off). SwinStage puts one in each block with `sharing`, right after the block is built.
    """

    @classmethod
    def sharing(cls, attention: WindowAttention) -> BatchedWindowAttention:
        """A BatchedWindowAttention holding `attention`'s submodules, Parameters and buffers (nothing is
        copied, no random numbers are drawn): the same state_dict keys and values."""
        head_dim = attention.qkv.out_features // (3 * attention.num_heads)
        new = cls(attention.dim, attention.num_heads, head_dim=head_dim, window_size=attention.window_size,
                  qkv_bias=attention.qkv.bias is not None, attn_drop=attention.attn_drop.p,
                  proj_drop=attention.proj_drop.p, device="meta")
        for name, child in attention.named_children():
            setattr(new, name, child)
        for name, tensor in [*attention.named_parameters(recurse=False), *attention.named_buffers(recurse=False)]:
            setattr(new, name, tensor)
        left_on_meta = [name for name, tensor in [*new.named_parameters(), *new.named_buffers()] if tensor.is_meta]
        if left_on_meta:
            raise RuntimeError(f"BatchedWindowAttention.sharing: timm's WindowAttention has no {left_on_meta}")
        new.fused_attn = attention.fused_attn
        return new.train(attention.training)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [windows * B, N, C], mask [windows, N, N] (0 / -100, shifted blocks) or None -> [windows * B, N, C]."""
        if self.training or not self.fused_attn or not is_cpu_float32_inference(x):
            return super().forward(x, mask)
        windows, tokens, _ = x.shape
        heads = self.num_heads
        query, key, value = self.qkv(x).reshape(windows, tokens, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        head_dim = query.shape[-1]
        bias = relative_position_bias(self.relative_position_bias_table, self.relative_position_index)
        if mask is None:
            bias = bias.expand(windows, heads, tokens, tokens)
        else:
            grid_windows = mask.shape[0]
            bias = (bias.unsqueeze(0) + mask.unsqueeze(1)).expand(windows // grid_windows, -1, -1, -1, -1)
        scores = torch.baddbmm(bias.reshape(-1, tokens, tokens), query.reshape(-1, tokens, head_dim),
                               key.reshape(-1, tokens, head_dim).transpose(1, 2), alpha=self.scale)
        out = torch.bmm(scores.softmax(dim=-1), value.reshape(-1, tokens, head_dim))
        out = out.view(windows, heads, tokens, head_dim).transpose(1, 2).reshape(windows, tokens, -1)
        return self.proj_drop(self.proj(out))


class SwinStage(nn.Module):
    """Swin blocks at one resolution, then (optionally) patch merging, as in HTS-AT's BasicLayer."""

    def __init__(self, dim: int, resolution: int, depth: int, num_heads: int, window_size: int,
                 mlp_ratio: float, drop_path: Sequence[float], downsample: bool, fused_attention: bool,
                 lab_drop_path: bool = True):
        super().__init__()
        self.lab_drop_path = lab_drop_path
        self.blocks = nn.ModuleList([
            SwinTransformerBlock(
                dim=dim, input_resolution=(resolution, resolution), num_heads=num_heads,
                window_size=window_size, shift_size=0 if index % 2 == 0 else window_size // 2,
                mlp_ratio=mlp_ratio, qkv_bias=True, drop_path=drop_path[index])
            for index in range(depth)])
        for block in self.blocks:
            block.attn = BatchedWindowAttention.sharing(block.attn)
            block.attn.fused_attn = fused_attention
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, tokens: torch.Tensor, want_lab: bool = False,
                run_last_block: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[B, H, W, C] -> ([B, H', W', C'], LAB output of the last block [B, H, W, C] or None).

        With `run_last_block` False (only the LAB output is needed) the ordinary path of the last
        block is skipped and the returned tokens are its input.
        """
        lab = None
        for index, block in enumerate(self.blocks):
            is_last = index == len(self.blocks) - 1
            if want_lab and is_last:
                lab = locality_aware_output(block, tokens, drop_path=self.lab_drop_path)
            if run_last_block or not is_last:
                tokens = block(tokens)
        if self.downsample is not None:
            tokens = self.downsample(tokens)
        return tokens, lab


class HTSAT(nn.Module):
    """HTS-AT Swin encoder over log-mel images, returning clip features and frame features.

    Args:
        audio_args: sr, n_fft, hop_length, f_min, f_max, n_mels of the front end.
        spec_size: side of the square input image (256); spec_size // n_mels chunks are stacked.
        locality_aware_block: frame features from the LAB of the last block (MGA-CLAP); False gives
            frame features from the ordinary last block (the ablation).
        lab_drop_path: in training, the last block's stochastic depth also acts on both LAB branches
            (the reference); False leaves the LAB without it.
        fused_attention: window attention through torch's scaled_dot_product_attention, or in CPU
            float32 inference `BatchedWindowAttention`'s batched matmuls; False: the explicit softmax.
        onednn_linear: linear layers (GELU fused into each MLP's fc1) through oneDNN in CPU float32
            inference (`models.onednn_linear`; the same parameters and numbers to float rounding).
    """

    def __init__(self, audio_args: dict, spec_size: int = 256, patch_size: int = 4, embed_dim: int = 96,
                 depths: Sequence[int] = (2, 2, 6, 2), num_heads: Sequence[int] = (4, 8, 16, 32),
                 window_size: int = 8, mlp_ratio: float = 4.0, num_classes: int = 527,
                 drop_path_rate: float = 0.1, spec_augmentation: bool = True,
                 locality_aware_block: bool = True, fused_attention: bool = True, onednn_linear: bool = True,
                 lab_drop_path: bool = True):
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"htsat.depths {list(depths)} and htsat.num_heads {list(num_heads)} must have "
                             f"the same length (one entry per stage)")
        n_mels = audio_args["n_mels"]
        if spec_size % n_mels:
            raise ValueError(f"htsat.spec_size ({spec_size}) must be a multiple of audio_args.n_mels ({n_mels})")
        self.spec_size = spec_size
        self.chunks = spec_size // n_mels
        self.locality_aware_block = locality_aware_block
        self.num_features = embed_dim * 2 ** (len(depths) - 1)

        self.audio_feats_extractor = LogMelFrontend(
            sample_rate=audio_args["sr"], n_fft=audio_args["n_fft"], hop_length=audio_args["hop_length"],
            f_min=audio_args["f_min"], f_max=audio_args["f_max"], n_mels=n_mels)
        self.bn0 = nn.BatchNorm2d(n_mels)
        self.spec_augmenter = SpecAugment() if spec_augmentation else nn.Identity()
        self.patch_embed = PatchEmbed(img_size=spec_size, patch_size=patch_size, in_chans=1,
                                      embed_dim=embed_dim, norm_layer=nn.LayerNorm, output_fmt="NHWC")
        drop_rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        grid = spec_size // patch_size
        self.layers = nn.ModuleList()
        for stage, (depth, heads) in enumerate(zip(depths, num_heads, strict=True)):
            first = sum(depths[:stage])
            self.layers.append(SwinStage(
                dim=embed_dim * 2 ** stage, resolution=grid // 2 ** stage, depth=depth, num_heads=heads,
                window_size=window_size, mlp_ratio=mlp_ratio, drop_path=drop_rates[first:first + depth],
                downsample=stage < len(depths) - 1, fused_attention=fused_attention, lab_drop_path=lab_drop_path))
        self.norm = nn.LayerNorm(self.num_features)
        # Present in the reference's checkpoints (AudioSet tagging head); MGA-CLAP does not use them.
        final_rows = grid // 2 ** (len(depths) - 1)
        self.tscam_conv = nn.Conv2d(self.num_features, num_classes, kernel_size=(final_rows // self.chunks, 3),
                                    padding=(0, 1))
        self.head = nn.Linear(num_classes, num_classes)
        self.apply(_init_weights)
        self.tscam_conv.requires_grad_(False)
        self.head.requires_grad_(False)
        if onednn_linear:
            set_onednn_linear(self, True)

    def log_mel(self, waveform: torch.Tensor) -> torch.Tensor:
        """[B, N] waveform -> [B, 1, T, n_mels] log-mel (before bn0)."""
        return self.audio_feats_extractor(waveform)

    def forward(self, waveform: torch.Tensor,
                need_clip_features: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        """[B, N] waveform -> (clip features [B, C] or None, frame features [B, 4 * grid_cols, C]).

        MGA-CLAP's embeddings use only the frame features; `need_clip_features=False` skips the work
        that only the clip features need (with the LAB on: the ordinary path of the last block).
        """
        spec = self.log_mel(waveform)
        spec = self.bn0(spec.transpose(1, 3)).transpose(1, 3)
        spec = self.spec_augmenter(spec)
        tokens = self.patch_embed(fold_spectrogram_to_image(spec, self.spec_size))
        lab = None
        for stage_index, stage in enumerate(self.layers):
            is_last = stage_index == len(self.layers) - 1
            want_lab = is_last and self.locality_aware_block
            tokens, lab = stage(tokens, want_lab=want_lab, run_last_block=need_clip_features or not want_lab)
        clip_features = None
        if need_clip_features:
            clip_grid = unfold_grid_to_frames(self.norm(tokens), self.chunks)   # [B, C, G, T]
            clip_features = clip_grid.flatten(2).amax(dim=2)
        frame_source = lab if lab is not None else tokens
        frame_grid = unfold_grid_to_frames(self.norm(frame_source), self.chunks)
        frame_features = frame_grid.mean(dim=2).transpose(1, 2)                 # [B, T, C]
        return clip_features, frame_features


def _init_weights(module: nn.Module) -> None:
    """Swin's initialisation: truncated normal linear weights, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
