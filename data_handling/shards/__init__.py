"""Training audio in WebDataset tar shards: written once from the training json files, read as streams.

- format.py: one clip as a tar sample (`<key>.flac`, `<key>.json`) and back.
- manifest.py: `manifest.json` (clips, captions, hours, per shard: clips, checksum, durations) and shard
  URL patterns (brace ranges, `pipe:` commands, fsspec URLs).
- writer.py / `python -m tools.make_shards`: json files + blacklist -> shards, in parallel, resumable.
- reader.py: the training stream of one rank: shards split across ranks and workers, a shuffle buffer,
  duration-bucketed batches of equal count on every rank, mid-epoch resume.

docs/shards.md is the user's guide.
"""
