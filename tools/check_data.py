"""Check the training data before a run, reading it exactly as training does.

    python -m tools.check_data -c settings/pretrain.yaml            # json_files, blacklist, data_args
    python -m tools.check_data --json a.json b.json --blacklist bl.json --audio-root DIR
    python -m tools.check_data -c settings/pretrain.yaml --decode --strict --out report.json

Per json file it counts the clips and captions kept (and the empty captions among them, which training
keeps as the reference does), the clips the blacklist removed (and which list
applied), the audio files missing (found neither at the json's path nor under audio_root, where a file of
another dataset is never taken: data_handling/audio_paths.py's AudioPathResolver) and, with --decode,
the files whose header soundfile cannot read; it gives the captions per duration bucket (those whose
audio was found) and the batches of one epoch on one process. It prints a table and writes a JSON
report (--out; default <output_dir>/check_data.json, the path is printed), which lists every missing
clip with the reason. The report itself: data_handling/check_data.py.

Exit status: 0; 1 with --strict when a file is missing or unreadable; 2 when the configuration, a json
file or the blacklist is missing or malformed (one line "error: ...").
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from data_handling.check_data import DataSettings, build_report, format_table
from data_handling.source_records import SourceOptions
from data_handling.synthetic.corpus import corpus_paths
from tools.config import ConfigError, load_config


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.check_data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", help="training YAML (json_files, blacklist, data_args)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a YAML key, e.g. --set data_args.audio_root=/data (repeatable)")
    parser.add_argument("--json", nargs="+", metavar="FILE", help="training json files (instead of json_files)")
    parser.add_argument("--blacklist", nargs="+", metavar="PATH",
                        help="blacklist file(s) or folder (instead of the YAML's blacklist)")
    parser.add_argument("--audio-root", help="where missing audio is looked up (instead of data_args.audio_root)")
    parser.add_argument("--decode", action="store_true",
                        help="open every audio file's header (soundfile.info) and count unreadable ones")
    parser.add_argument("--workers", type=int, default=8, help="threads for --decode (default: %(default)s)")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 if a file is missing or unreadable")
    parser.add_argument("--out", type=Path, help="JSON report (default: <output_dir>/check_data.json)")
    return parser.parse_args(argv)


def data_settings(args: argparse.Namespace) -> DataSettings:
    """The YAML's data keys (or the defaults without -c), with --json, --blacklist, --audio-root on top."""
    if args.config is None and not args.json:
        raise ValueError("give a training YAML (-c settings/pretrain.yaml) or json files (--json FILE ...)")
    config = load_config(args.config, args.overrides)
    json_files = list(args.json) if args.json else list(config.json_files)
    if not json_files and config.synthetic is not None:  # the quickstart: its corpus's training split
        json_files = [corpus_paths(Path(config.synthetic.root))["train_json"]]
    if not json_files:
        raise ValueError(f"{args.config}: json_files is empty; list the training json files there or pass --json")
    blacklist = args.blacklist if args.blacklist else config.blacklist
    if isinstance(blacklist, list) and len(blacklist) == 1:
        blacklist = blacklist[0]
    data_args = config.data_args
    return DataSettings(json_files, blacklist, args.audio_root or data_args.audio_root,
                        list(data_args.duration_bucket_edges), data_args.batch_size, data_args.drop_last,
                        Path(config.output_dir) / "check_data.json",
                        SourceOptions(tuple(data_args.caption_templates), data_args.strict, data_args.audio_cache))


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        settings = data_settings(args)
        report = build_report(settings, decode=args.decode, workers=args.workers)
    except (ConfigError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = args.out or settings.default_out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(format_table(report))
    print(f"report: {out}")
    totals = report["totals"]
    problems = totals["missing_files"] + totals.get("unreadable_files", 0)
    if args.strict and problems:
        print(f"error: {problems} audio files missing or unreadable (--strict)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
