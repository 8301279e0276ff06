"""Which parameters train: the towers' `freeze`, the last blocks left trainable, the codebook.

    audio_encoder_args.freeze: true                  the audio tower (HTS-AT) is frozen (the reference's key)
    audio_encoder_args.trainable_last_blocks: N      ... except its last N Swin blocks and what follows them
                                                     (the patch merging after them, the final LayerNorm)
    text_encoder_args.freeze: true                   the text tower is frozen (the reference's key)
    text_encoder_args.trainable_last_blocks: N       ... except its last N transformer layers
    codebook.freeze: true                            the codebook keeps its values

Frozen parameters have requires_grad False, so the optimiser never sees them (tools/train/optim.py). As in
the reference, a frozen tower still runs in train mode: its dropout is active and HTS-AT's input BatchNorm
(bn0) keeps updating its running statistics, which are buffers, not parameters. The projections
(frame_proj, word_proj) and the temperature always train.
"""

from __future__ import annotations

from torch import nn


def apply_freezing(model: nn.Module) -> None:
    """`model`: an ASE (its config, audio_encoder, text_encoder and codebook). Leave the last blocks of frozen towers trainable and freeze the codebook, as `model.config` says
    (the towers' own `freeze` is applied where they are built). Raises ValueError when a tower has fewer
    blocks than asked for."""
    config = model.config
    audio_blocks = config.audio_encoder_args.trainable_last_blocks
    if audio_blocks:
        for module in htsat_last_blocks_and_after(model.audio_encoder.audio_enc, audio_blocks):
            module.requires_grad_(True)
    text_blocks = config.text_encoder_args.trainable_last_blocks
    if text_blocks:
        for module in text_last_layers(model.text_encoder.text_encoder, text_blocks):
            module.requires_grad_(True)
    if config.codebook.freeze:
        model.codebook.requires_grad_(False)


def htsat_last_blocks_and_after(htsat: nn.Module, count: int) -> list[nn.Module]:
    """HTS-AT's last `count` Swin blocks (in forward order across stages) and the modules after them that feed
    the frame features: the patch merging of their stages and the final LayerNorm (not the unused tagging
    head)."""
    stages = getattr(htsat, "layers", None)
    if stages is None:
        raise ValueError(f"audio_encoder_args.trainable_last_blocks needs HTS-AT's Swin stages; "
                         f"{type(htsat).__name__} has none")
    blocks = [(stage_index, block) for stage_index, stage in enumerate(stages) for block in stage.blocks]
    if count > len(blocks):
        raise ValueError(f"audio_encoder_args.trainable_last_blocks is {count} but the audio tower has "
                         f"{len(blocks)} blocks (audio_encoder_args.htsat.depths); use at most {len(blocks)}")
    chosen = blocks[len(blocks) - count:]
    first_stage = chosen[0][0]
    merges = [stage.downsample for stage in stages[first_stage:] if stage.downsample is not None]
    return [block for _, block in chosen] + merges + [htsat.norm]


def text_last_layers(text_model: nn.Module, count: int) -> list[nn.Module]:
    """The last `count` transformer layers of a BERT-family text model (`encoder.layer`)."""
    layers = getattr(getattr(text_model, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"text_encoder_args.trainable_last_blocks needs a BERT-family text tower "
                         f"(encoder.layer); {type(text_model).__name__} has none")
    if count > len(layers):
        raise ValueError(f"text_encoder_args.trainable_last_blocks is {count} but the text tower has "
                         f"{len(layers)} layers; use at most {len(layers)}")
    return list(layers[len(layers) - count:])
