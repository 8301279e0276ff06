"""The shards' manifest and their URLs.

`manifest.json`, written by the shard writer next to the shards:

    {"format": "mga-clap-shards", "version": 1, "sample_rate": 32000, "max_seconds": 300.0, "bits": 24,
     "resampler": "kaiser_best" | "soxr_hq",
     "clips": int, "captions": int, "hours": float, "json_files": [...], "blacklist": [...],
     "unreadable": [{"audio", "id", "source", "reason"}, ...],
     "shards": [{"name": "shard-000000.tar", "clips": int, "captions": int, "seconds": float, "bytes": int,
                 "sha256": str, "durations": [json seconds per clip], "captions_per_clip": [int per clip]}]}

The per-clip durations and caption counts let every rank compute, without reading a shard, how many
batches each rank and worker will make in an epoch (data_handling/shards/reader.py).

Shard URLs (`data_args.shards`): a folder (its manifest's shards), local paths with brace ranges
(`data/shards/shard-{000000..000099}.tar`), several patterns joined by `::` or given as a list,
`pipe:` commands (`pipe:aws s3 cp s3://bucket/shard-000001.tar -`), and fsspec URLs (s3://, gs://,
https://..., with the matching fsspec package installed). A shard is matched to its manifest entry by
file name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

MANIFEST_NAME = "manifest.json"
FORMAT_NAME = "mga-clap-shards"
FORMAT_VERSION = 1


class ShardError(RuntimeError):
    """A shard or the manifest is missing, unreadable or does not match; the message names it."""


@dataclass
class ShardEntry:
    name: str
    clips: int
    captions: int
    seconds: float
    bytes: int
    sha256: str
    durations: list[float]
    captions_per_clip: list[int]


@dataclass
class ShardManifest:
    sample_rate: int
    max_seconds: float
    bits: int
    shards: list[ShardEntry]
    json_files: list[str] = field(default_factory=list)
    blacklist: list[str] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    resampler: str = "soxr_hq"  # how the audio was resampled to sample_rate (absent in older manifests: soxr_hq)

    @property
    def clips(self) -> int:
        return sum(entry.clips for entry in self.shards)

    @property
    def captions(self) -> int:
        return sum(entry.captions for entry in self.shards)

    @property
    def hours(self) -> float:
        return sum(entry.seconds for entry in self.shards) / 3600

    def entry(self, url: str) -> ShardEntry:
        """The entry of a shard URL (matched by file name); ShardError when the manifest has none."""
        name = shard_name(url)
        for entry in self.shards:
            if entry.name == name:
                return entry
        raise ShardError(f"shard {url!r} (file name {name!r}) is not in the manifest, whose shards are "
                         f"{self.shards[0].name if self.shards else '(none)'} ...: write the shards and their "
                         f"manifest together with `python -m tools.make_shards`, or set data_args.shards_manifest")

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "sample_rate": self.sample_rate,
                "max_seconds": self.max_seconds, "bits": self.bits, "resampler": self.resampler, "clips": self.clips,
                "captions": self.captions, "hours": round(self.hours, 4), "json_files": self.json_files,
                "blacklist": self.blacklist, "unreadable": self.unreadable,
                "shards": [asdict(entry) for entry in self.shards]}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "manifest") -> ShardManifest:
        if data.get("format") != FORMAT_NAME or data.get("version") != FORMAT_VERSION:
            raise ShardError(f"{where} is not a shard manifest of version {FORMAT_VERSION} (format "
                             f"{data.get('format')!r}, version {data.get('version')!r})")
        try:
            return cls(sample_rate=int(data["sample_rate"]), max_seconds=float(data["max_seconds"]),
                       bits=int(data["bits"]), shards=[ShardEntry(**entry) for entry in data["shards"]],
                       json_files=list(data.get("json_files", [])), blacklist=list(data.get("blacklist", [])),
                       unreadable=list(data.get("unreadable", [])),
                       resampler=str(data.get("resampler", "soxr_hq")))
        except (KeyError, TypeError, ValueError) as error:
            raise ShardError(f"{where} is malformed ({type(error).__name__}: {error}); rewrite it with "
                             f"`python -m tools.make_shards`") from error

    def write(self, path: str | Path) -> None:
        """Write atomically (a reader never sees half a manifest)."""
        path = Path(path)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(self.to_json(), indent=1))
        os.replace(partial, path)


def is_local(url: str) -> bool:
    return not url.startswith("pipe:") and urlparse(url).scheme in ("", "file")


def local_path(url: str) -> Path:
    return Path(urlparse(url).path if url.startswith("file:") else url)


def shard_name(url: str) -> str:
    """The file name of a shard URL; for `pipe:` the last word that holds '.tar'."""
    if url.startswith("pipe:"):
        words = [word for word in url[5:].split() if ".tar" in word]
        url = words[-1] if words else url
    return Path(urlparse(url).path or url).name


def open_url(url: str) -> IO[bytes]:
    """A binary stream of a local path, `pipe:` command or fsspec/http(s) URL."""
    if is_local(url):
        return open(local_path(url), "rb")  # noqa: SIM115 (the caller closes it)
    if url.startswith("pipe:"):
        import webdataset

        return webdataset.gopen(url, "rb")
    import fsspec

    try:
        return fsspec.open(url, "rb").open()
    except (ImportError, ValueError) as error:  # no fsspec implementation of the protocol
        raise ShardError(f"cannot open {url!r}: {error}; install the fsspec package of its protocol "
                         f"(s3fs, gcsfs, ...) or use a 'pipe:' command") from error


def expand_shard_urls(spec: str | Sequence[str]) -> list[str]:
    """Shard URLs of `data_args.shards` (see the module docstring), in order; ShardError when there are none
    or local ones are missing (all missing ones named)."""
    from webdataset.shardlists import expand_urls

    patterns = [spec] if isinstance(spec, str) else list(spec)
    urls: list[str] = []
    for pattern in patterns:
        if is_local(pattern) and local_path(pattern).is_dir():
            manifest = read_manifest(str(local_path(pattern) / MANIFEST_NAME))
            urls += [str(local_path(pattern) / entry.name) for entry in manifest.shards]
        else:
            urls += expand_urls(str(pattern))
    if not urls:
        raise ShardError(f"data_args.shards {spec!r} names no shard")
    missing = [url for url in urls if is_local(url) and not local_path(url).is_file()]
    if missing:
        raise ShardError(f"{len(missing)} of {len(urls)} shards of data_args.shards {spec!r} do not exist: "
                         f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    return urls


def default_manifest_url(first_shard: str) -> str:
    """manifest.json in the first shard's folder (for a `pipe:` shard: data_args.shards_manifest is needed)."""
    if first_shard.startswith("pipe:"):
        raise ShardError("shards read through 'pipe:' commands need data_args.shards_manifest (a path or URL "
                         "of their manifest.json)")
    if is_local(first_shard):
        return str(local_path(first_shard).parent / MANIFEST_NAME)
    head, _, _ = first_shard.rpartition("/")
    return f"{head}/{MANIFEST_NAME}"


def read_manifest(url: str) -> ShardManifest:
    """The manifest at a path or URL; ShardError naming it when missing or malformed."""
    try:
        with open_url(url) as stream:
            data = json.loads(stream.read())
    except FileNotFoundError as error:
        raise ShardError(f"shard manifest {url!r} not found: the shard writer writes it next to the shards "
                         f"(`python -m tools.make_shards`); or set data_args.shards_manifest") from error
    except (OSError, ValueError) as error:
        raise ShardError(f"cannot read the shard manifest {url!r}: {type(error).__name__}: {error}") from error
    if not isinstance(data, dict):
        raise ShardError(f"shard manifest {url!r} is not a json object")
    return ShardManifest.from_json(data, where=f"shard manifest {url!r}")
