"""Write WebDataset shards of the training data (see docs/shards.md).

    python -m tools.make_shards -c settings/pretrain.yaml --out data/shards/wavcaps --workers 8
    python -m tools.make_shards -c settings/quickstart.yaml --out data/shards/quickstart
    python -m tools.make_shards --json-files a.json b.json --blacklist bl.json --out DIR
    python -m tools.make_shards --verify DIR          # sizes and checksums against the manifest

The clips are those training would read from the config's json_files, blacklist and data_args.audio_root
(the quickstart's synthetic corpus is generated first when missing; data_handling/shards/writer.py's
training_clips). A second run of the same command keeps the finished shards and rewrites the rest.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm import tqdm

from tools.config import DataArgs, load_config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.make_shards", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_argument_group("what to write (a config, or json files)")
    source.add_argument("-c", "--config", type=Path, help="a training YAML: json_files, blacklist, data_args")
    source.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a YAML key (repeatable)")
    source.add_argument("--json-files", nargs="+", help="WavCaps-style json files (instead of a config)")
    source.add_argument("--blacklist", nargs="*", default=[], help="blacklist json files (with --json-files)")
    source.add_argument("--audio-root", help="where relative audio paths are looked up (with --json-files)")
    parser.add_argument("--out", type=Path, help="output folder (shards, manifest.json)")
    parser.add_argument("--clips-per-shard", type=int, default=1000, help="at most this many clips per shard")
    parser.add_argument("--shard-minutes", type=float, help="and at most this many minutes of audio per shard")
    parser.add_argument("--workers", type=int, default=1, help="decoding processes")
    parser.add_argument("--bits", type=int, default=24, choices=(16, 24), help="FLAC sample width")
    parser.add_argument("--max-seconds", type=float,
                        help="seconds kept of each file (default: the config's data_args.max_decode_seconds, 300)")
    parser.add_argument("--resampler", choices=("kaiser_best", "soxr_hq"),
                        help="resampler of audio not at 32 kHz (default: the config's data_args.resampler, "
                             "kaiser_best)")
    parser.add_argument("--overwrite", action="store_true", help="replace shards of other inputs in --out")
    parser.add_argument("--verify", type=Path, metavar="DIR", help="check DIR's shards against its manifest")
    args = parser.parse_args(argv)
    if args.verify is None and (args.out is None or (args.config is None) == (args.json_files is None)):
        parser.error("give --out and exactly one of -c/--config and --json-files (or --verify DIR)")
    return args


def training_sources(args: argparse.Namespace) -> tuple[list[str], list[str], str | None, float, str]:
    """(json files, blacklist files, audio root, max seconds, resampler) from the config or the flags."""
    if args.json_files is not None:
        return list(args.json_files), list(args.blacklist), args.audio_root, \
            300.0 if args.max_seconds is None else args.max_seconds, args.resampler or DataArgs.resampler
    from data_handling.synthetic import ensure_corpus
    from data_handling.synthetic.corpus import corpus_paths
    config = load_config(args.config, args.overrides)
    if not config.json_files:
        root = ensure_corpus(config.synthetic.root, config.synthetic.num_train, config.synthetic.num_test,
                             config.synthetic.seed)
        config.json_files = [corpus_paths(root)["train_json"]]
    blacklist = config.blacklist
    blacklist = [] if not blacklist else [blacklist] if isinstance(blacklist, str) else list(blacklist)
    max_seconds = config.data_args.max_decode_seconds if args.max_seconds is None else args.max_seconds
    return list(config.json_files), blacklist, config.data_args.audio_root, max_seconds, \
        args.resampler or config.data_args.resampler


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    from data_handling.shards.manifest import ShardError
    from data_handling.shards.writer import training_clips, verify_shards, write_shards

    try:
        if args.verify is not None:
            bad = verify_shards(args.verify)
            print(f"{args.verify}: " + (f"{len(bad)} shards differ from the manifest: {', '.join(bad)}" if bad
                                         else "every shard matches the manifest"))
            return 1 if bad else 0
        json_files, blacklist, audio_root, max_seconds, resampler = training_sources(args)
        clips, unresolved = training_clips(json_files, blacklist, audio_root)
        with tqdm(total=len(clips), unit="clip", desc="writing shards", dynamic_ncols=True) as progress:
            manifest = write_shards(clips, args.out, clips_per_shard=args.clips_per_shard,
                                    shard_minutes=args.shard_minutes, workers=args.workers, bits=args.bits,
                                    max_seconds=max_seconds, overwrite=args.overwrite, json_files=json_files,
                                    blacklist=blacklist, unresolved=unresolved, on_shard=progress.update,
                                    resampler=resampler)
    except (ShardError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.out}: {len(manifest.shards)} shards, {manifest.clips} clips, {manifest.captions} captions, "
          f"{manifest.hours:.2f} h; {len(manifest.unreadable)} clips unreadable or missing"
          + (" (listed in manifest.json)" if manifest.unreadable else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
