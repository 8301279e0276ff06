"""Similarities between one audio file and a few texts, clip-level and frame-level, with a figure.

    python example.py --audio data/synthetic/sed/audio/sed_00000.wav --text "a bell rings" "clicking"
    python example.py --audio speech.wav --text "male speech" "electric shaver" \\
        --ckpt pretrained_models/model.pt --out outputs/example.png

Audio of any length (mono, resampled to 32 kHz): shorter than 10 s it is tiled to 10 s, longer it is
encoded in 10 s windows (a last window holding less than one frame, 10 / 32 s, of audio is dropped). Prints the cosine between the clip embedding and each text, then each text's
cosine with every frame (10 / 32 s each); saves a PNG with the log-mel spectrogram on top and the frame
similarities below on the same time axis. Model and checkpoint: settings/inference.yaml.
"""

from __future__ import annotations

from pathlib import Path

import torch

from data_handling.audio_io import load_audio
from models.runtime import unwrap
from models.similarity import clip_text_similarity, frame_text_similarity
from models.windowing import FRAME_HOP_SECONDS
from tools.eval.cli import (
    exit_script,
    load_script_config,
    load_script_model,
    resolve_path,
    run_script,
    script_parser,
)
from tools.eval.embedding import embed_texts, embed_waveform, log_mel_spectrogram
from tools.eval.plots import plot_frame_similarities

DEFAULT_FIGURE = "outputs/example.png"


def parse_args(argv: list[str] | None):
    parser = script_parser(__doc__, out_default=DEFAULT_FIGURE,
                           out_help="PNG figure path (default: %(default)s)")
    parser.add_argument("--audio", required=True, help="audio file (wav, flac, ogg, mp3), any length")
    parser.add_argument("--text", nargs="+", required=True, help="one or more texts to compare with the audio")
    return parser.parse_args(argv)


def similarity_tables(clip_sims: torch.Tensor, frame_sims: torch.Tensor, texts: list[str]) -> str:
    """Clip-level table (one row per text) and frame-level table (one row per frame, one column per text)."""
    width = max(len(text) for text in texts)
    lines = ["clip-level cosine similarity:"]
    lines += [f"  {text:<{width}}  {value:+.4f}" for text, value in zip(texts, clip_sims.tolist(), strict=True)]
    lines += ["", "frame-level cosine similarity (frame start in s):",
              "  " + "time".rjust(7) + "".join(f"  [{index}]".rjust(9) for index in range(len(texts)))]
    for frame, values in enumerate(frame_sims.tolist()):
        lines.append(f"  {frame * FRAME_HOP_SECONDS:7.2f}" + "".join(f"{value:+9.4f}" for value in values))
    lines += ["  " + ", ".join(f"[{index}] {text}" for index, text in enumerate(texts))]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    config = load_script_config(args)
    model, device = load_script_model(args, config)
    sample_rate = unwrap(model).sample_rate
    audio_path = resolve_path(args.audio)
    waveform = torch.from_numpy(load_audio(audio_path, sample_rate=sample_rate))
    frames, clip = embed_waveform(model, waveform, device, pad_mode="tile", precision=config.eval.precision)
    text_embeds = embed_texts(model, args.text, device, precision=config.eval.precision)
    clip_sims = clip_text_similarity(clip[None], text_embeds)[0]           # [K]
    frame_sims = frame_text_similarity(frames, text_embeds)                # [T, K]
    print(similarity_tables(clip_sims, frame_sims, args.text))
    duration = waveform.numel() / sample_rate
    figure = plot_frame_similarities(
        log_mel_spectrogram(model, waveform), frame_sims, args.text, args.out, sample_rate=sample_rate,
        hop_length=unwrap(model).config.audio_args.hop_length, frame_hop=FRAME_HOP_SECONDS, duration=duration,
        title=f"{Path(audio_path).name} ({duration:.1f} s)")
    print(f"figure written to {figure}")
    return {"clip_similarity": dict(zip(args.text, clip_sims.tolist(), strict=True)),
            "frame_similarity": frame_sims, "figure": str(figure)}


if __name__ == "__main__":
    exit_script(run_script(main))
