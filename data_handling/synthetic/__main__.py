"""Command line: python -m data_handling.synthetic --out DIR --num-train N --num-test M --seed S."""

from __future__ import annotations

import argparse
import json

from data_handling.synthetic.corpus import generate_corpus


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m data_handling.synthetic",
        description="Write the synthetic MGA-CLAP corpus (train, retrieval, SED, grounding, ESC-50 layouts).",
    )
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--num-train", type=int, default=1000, help="training clips (default 1000)")
    parser.add_argument(
        "--num-test",
        type=int,
        default=100,
        help="clips in each of the retrieval, SED and grounding splits (default 100)",
    )
    parser.add_argument("--num-esc-per-class", type=int, default=8, help="ESC-50 style clips per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing corpus in --out (only the corpus's own files are removed)",
    )
    parser.add_argument(
        "--events", default=None, help="comma-separated classes to use, e.g. 'siren,dog_bark' (default: all)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="synthesis processes (default min(2, CPUs))"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    event_names = args.events.split(",") if args.events is not None else None
    try:
        summary = generate_corpus(
            args.out,
            args.num_train,
            args.num_test,
            args.seed,
            args.overwrite,
            event_names,
            args.num_esc_per_class,
            args.workers,
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from error
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
