"""Shards: writing (round trip, resume, parallel), training from them (file mode's rows, DDP, resume), bad input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from data_handling.audio_paths import AudioPathResolver
from data_handling.caption_dataset import CaptionAudioDataset, collate_captions
from data_handling.caption_sources import read_wavcaps_jsons
from data_handling.samplers import DurationBucketBatchSampler
from data_handling.shards.format import ClipRecord
from data_handling.shards.manifest import ShardError, expand_shard_urls, read_manifest
from data_handling.shards.reader import open_shard_dataset
from data_handling.shards.writer import PlannedClip, group_clips, plan_hash, verify_shards, write_shards
from data_handling.training_items import fill_missing_durations, prepare_training_items, resolve_audio_paths
from tests.warm_python import run_ranks
from tools.make_shards import main as shards_main

RATE = 32000


def noise(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal((round(seconds * rate), channels))).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    """Two WavCaps-style json files (single-caption FreeSound, 5-caption Clotho) with a blacklisted clip,
    one corrupt file and one missing file; rates 44.1, 48 and 32 kHz, stereo and mono, 2 to 14 s."""
    root = tmp_path_factory.mktemp("shard_corpus")
    audio = root / "audio"
    audio.mkdir()
    free = []
    for k, (seconds, rate, channels, ext) in enumerate([(12.5, 44100, 2, "flac"), (3.0, 32000, 1, "wav"),
                                                       (7.0, 48000, 1, "wav"), (14.0, 32000, 1, "flac"),
                                                       (2.0, 44100, 1, "wav"), (6.0, 32000, 1, "wav")]):
        sf.write(audio / f"fs{k}.{ext}", noise(seconds, rate, channels, seed=k), rate)
        free.append({"id": f"fs{k}", "audio": f"audio/fs{k}.{ext}", "caption": f"Sound number {k}, LOUD.",
                     "duration": seconds})
    (audio / "broken.wav").write_bytes(b"RIFF not really a wav" * 10)
    free.append({"id": "broken", "audio": "audio/broken.wav", "caption": "broken", "duration": 4.0})
    free.append({"id": "gone", "audio": "audio/gone.wav", "caption": "missing", "duration": 4.0})
    free.append({"id": "banned", "audio": "audio/fs0.flac", "caption": "blacklisted", "duration": 12.5})
    clotho = []
    for k in range(3):
        sf.write(audio / f"cl{k}.wav", noise(11.0 + k, 44100, 1, seed=10 + k), 44100)
        clotho.append({"id": f"cl{k}", "audio": f"audio/cl{k}.wav", "duration": 11.0 + k,
                       **{f"caption_{c}": f"clotho clip {k} caption {c}" for c in range(1, 6)}})
    (root / "FreeSound").mkdir()
    (root / "FreeSound" / "fs.json").write_text(json.dumps({"num_captions_per_audio": 1, "data": free}))
    (root / "Clotho").mkdir()
    (root / "Clotho" / "train.json").write_text(json.dumps({"num_captions_per_audio": 5, "data": clotho}))
    (root / "blacklist.json").write_text(json.dumps({"FreeSound": ["banned"], "AudioSet": []}))
    return {"json_files": [str(root / "FreeSound" / "fs.json"), str(root / "Clotho" / "train.json")],
            "blacklist": str(root / "blacklist.json"), "audio_root": str(root), "root": root}


def write_from(corpus: dict, out: Path, **options) -> None:
    argv = ["--json-files", *corpus["json_files"], "--blacklist", corpus["blacklist"], "--audio-root",
            corpus["audio_root"], "--out", str(out), "--clips-per-shard", "3"]
    assert shards_main(argv + [str(value) for option in options.items() for value in option]) == 0


@pytest.fixture(scope="module")
def shards(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "written"
    write_from(corpus, out)
    return out


def file_mode_items(corpus: dict):
    """File mode's rows without the corrupt clip (which shards leave out and file mode skips when read)."""
    items = prepare_training_items(corpus["json_files"], blacklist=corpus["blacklist"],
                                   audio_root=corpus["audio_root"], skip_missing=True)
    return [item for item in items if item.clip_id != "broken"]


@pytest.mark.slow
def test_manifest_counts_and_lists_unreadable(corpus, shards):
    manifest = read_manifest(str(shards / "manifest.json"))
    assert manifest.json_files == list(corpus["json_files"]) and manifest.blacklist == [corpus["blacklist"]]
    assert manifest.clips == 9 and manifest.captions == 6 + 15  # 6 FreeSound clips, 3 Clotho clips x 5
    assert [entry.clips for entry in manifest.shards] == [3, 3, 2, 1]  # planned 3 per shard; 'broken' left out
    assert manifest.sample_rate == 32000 and manifest.max_seconds == 300 and manifest.bits == 24
    assert manifest.resampler == "kaiser_best"  # data_args.resampler's default, as file-mode training
    assert sorted((row["id"], row["reason"]) for row in manifest.unreadable)[0][0] == "broken"
    assert {row["id"] for row in manifest.unreadable} == {"broken", "gone"}
    reasons = {row["id"]: row["reason"] for row in manifest.unreadable}
    assert reasons["gone"].startswith("no file named 'gone.wav' under")  # the lookup's own reason, as check_data's
    assert abs(manifest.hours * 3600 - (12.5 + 3 + 7 + 14 + 2 + 6 + 11 + 12 + 13)) < 1e-3
    assert verify_shards(shards) == []


@pytest.mark.slow
def test_round_trip_gives_file_mode_rows_and_crops(corpus, shards):
    items = file_mode_items(corpus)
    file_mode = CaptionAudioDataset(items, RATE, max_length=10.0)
    sharded = open_shard_dataset(str(shards), max_length=10.0)
    assert len(sharded) == len(file_mode) == 21
    assert sharded.durations == file_mode.durations
    for row in range(len(file_mode)):
        torch.manual_seed(row)
        expected = file_mode[row]
        torch.manual_seed(row)
        got = sharded[row]
        assert (got["idx"], got["caption"]) == (expected["idx"], expected["caption"])
        assert got["audio"].shape == expected["audio"].shape
        torch.testing.assert_close(got["audio"], expected["audio"], rtol=0, atol=2e-6)  # 24-bit FLAC


def test_shards_follow_the_resampler(corpus, tmp_path):
    """--resampler soxr_hq: recorded in the manifest, and the rows equal file mode's with the same resampler."""
    write_from(corpus, tmp_path / "soxr", **{"--resampler": "soxr_hq"})
    sharded = open_shard_dataset(str(tmp_path / "soxr"), max_length=10.0)
    assert read_manifest(str(tmp_path / "soxr" / "manifest.json")).resampler == sharded.resampler == "soxr_hq"
    file_mode = CaptionAudioDataset(file_mode_items(corpus), RATE, max_length=10.0, resampler="soxr_hq")
    kaiser = CaptionAudioDataset(file_mode_items(corpus), RATE, max_length=10.0)
    crops = {}
    for name, dataset in (("soxr files", file_mode), ("kaiser files", kaiser), ("soxr shards", sharded)):
        torch.manual_seed(0)
        crops[name] = dataset[0]["audio"]  # fs0: 12.5 s of 44.1 kHz stereo
    torch.testing.assert_close(crops["soxr shards"], crops["soxr files"], rtol=0, atol=2e-6)
    assert (crops["soxr shards"] - crops["kaiser files"]).abs().max() > 1e-4


@pytest.mark.slow
def test_the_training_loader_gives_the_same_batches(corpus, shards):
    file_mode = CaptionAudioDataset(file_mode_items(corpus), RATE, max_length=10.0)
    sharded = open_shard_dataset(f"{shards}/shard-{{000000..000003}}.tar", max_length=10.0)
    batches = {}
    for name, dataset in (("files", file_mode), ("shards", sharded)):
        sampler = DurationBucketBatchSampler(dataset.durations, batch_size=2, seed=1, drop_last=False)
        sampler.set_epoch(1)
        torch.manual_seed(5)
        batches[name] = list(DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_captions))
    assert len(batches["files"]) == len(batches["shards"]) > 5
    for expected, got in zip(batches["files"], batches["shards"], strict=True):
        assert got["idx"].tolist() == expected["idx"].tolist() and got["captions"] == expected["captions"]
        torch.testing.assert_close(got["audio"], expected["audio"], rtol=0, atol=2e-6)


@pytest.mark.slow
def test_rewriting_keeps_finished_shards(corpus, shards, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(shards, copy)
    kept = copy / "shard-000000.tar"
    stamp = kept.stat().st_mtime_ns
    (copy / "shard-000001.tar").unlink()  # lost
    (copy / "shard-000002.tar").write_bytes(b"half a shard")  # interrupted: its size no longer matches
    os.rename(copy / "shard-000003.tar", copy / "shard-000003.tar.partial")  # never finished
    (copy / "shard-000003.tar.done").unlink()
    write_from(corpus, copy)
    assert kept.stat().st_mtime_ns == stamp
    for name in ("shard-000001.tar", "shard-000002.tar", "shard-000003.tar"):  # deterministic bytes
        assert (copy / name).read_bytes() == (shards / name).read_bytes()
    assert verify_shards(copy) == [] and not (copy / "shard-000003.tar.partial").exists()
    with pytest.raises(SystemExit):  # argparse: --bits must be 16 or 24
        write_from(corpus, copy, **{"--bits": 8})
    assert shards_main(["--json-files", *corpus["json_files"], "--audio-root", corpus["audio_root"],
                        "--out", str(copy), "--clips-per-shard", "3"]) == 2  # no blacklist: another plan
    write_from(corpus, copy)  # the same plan again: every shard kept
    assert kept.stat().st_mtime_ns == stamp
    assert shards_main(["--json-files", *corpus["json_files"], "--blacklist", corpus["blacklist"], "--audio-root",
                        corpus["audio_root"], "--out", str(copy), "--clips-per-shard", "3",
                        "--bits", "16"]) == 2  # 16-bit FLAC (24 is the default): another plan


def test_plan_hash_changes_with_every_clip_and_option():
    """The hash that lets a rerun keep finished shards names everything they hold: a change of any clip's audio
    path or record, of the grouping into shards, or of an option is another plan."""
    def clip(index: int, caption: str = "rain", path: str = "a.flac") -> PlannedClip:
        return PlannedClip(path, ClipRecord(index, f"id{index}", (caption,), 2.0, 0.0, "x.json", path))

    plan = [[clip(0), clip(1)], [clip(2)]]
    base = plan_hash(plan, 10.0, 16, "kaiser_best")
    assert plan_hash([[clip(0), clip(1)], [clip(2)]], 10.0, 16, "kaiser_best") == base  # same inputs, same hash
    changed = [[[clip(0), clip(1, caption="wind")], [clip(2)]], [[clip(0), clip(1, path="b.flac")], [clip(2)]],
               [[clip(0)], [clip(1), clip(2)]], [[clip(0), clip(1)], [clip(2)], []]]
    assert all(plan_hash(other, 10.0, 16, "kaiser_best") != base for other in changed)
    assert plan_hash(plan, 5.0, 16, "kaiser_best") != base and plan_hash(plan, 10.0, 24, "kaiser_best") != base
    assert plan_hash(plan, 10.0, 16, "soxr_hq") != base


@pytest.mark.slow
def test_parallel_writing_gives_the_same_bytes(corpus, shards, tmp_path):
    items = read_wavcaps_jsons(corpus["json_files"], corpus["audio_root"], corpus["blacklist"])
    resolution = resolve_audio_paths(items, AudioPathResolver(corpus["audio_root"]))
    clips = group_clips(fill_missing_durations(resolution.found))
    write_shards(clips, tmp_path / "parallel", clips_per_shard=3, workers=2)
    for name in ("shard-000000.tar", "shard-000003.tar"):
        assert (tmp_path / "parallel" / name).read_bytes() == (shards / name).read_bytes()


def test_verify_names_a_changed_shard(shards, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(shards, copy)
    data = bytearray((copy / "shard-000001.tar").read_bytes())
    data[5000] ^= 0xFF
    (copy / "shard-000001.tar").write_bytes(bytes(data))
    assert verify_shards(copy) == ["shard-000001.tar"]
    assert shards_main(["--verify", str(copy)]) == 1 and "shard-000001.tar" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------------
# Two ranks x two workers; resume
# ----------------------------------------------------------------------------------------------------
def rank_epochs(rank: int, shard_dirs: list[str], out_dir: str) -> None:
    """Two epochs of each shard folder on this rank, with two loader workers; saves the batches' clip ids."""
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        seen = {}
        for name, shard_dir in enumerate(shard_dirs):
            dataset = open_shard_dataset(shard_dir, max_length=1.0)
            sampler = DurationBucketBatchSampler(dataset.durations, batch_size=2, bucket_edges=[100.0], seed=0)
            loader = DataLoader(dataset, batch_sampler=sampler, num_workers=2, collate_fn=collate_captions)
            for epoch in (0, 1):
                sampler.set_epoch(epoch)
                seen[name, epoch] = [batch["idx"].tolist() for batch in loader]
        torch.save(seen, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_two_workers_see_every_clip_once(corpus, shards, synthetic_corpus, tmp_path):
    """16 synthetic clips, batches of 2: 4 steps per rank, every clip once per epoch. The corpus above:
    21 rows, 10 batches of 2 (one row dropped, drop_last), 5 steps per rank, every row at most once."""
    from data_handling.synthetic.corpus import corpus_paths

    synthetic_shards = tmp_path / "synthetic_shards"
    assert shards_main(["--json-files", corpus_paths(synthetic_corpus)["train_json"], "--out", str(synthetic_shards),
                        "--clips-per-shard", "3"]) == 0
    run_ranks(rank_epochs, ([str(synthetic_shards), str(shards)], str(tmp_path)))
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1)]
    for epoch in (0, 1):
        per_rank = [result[0, epoch] for result in results]
        assert [len(batches) for batches in per_rank] == [4, 4]  # equal step counts
        assert sorted(clip for batches in per_rank for batch in batches for clip in batch) == list(range(16))
        per_rank = [result[1, epoch] for result in results]
        assert [len(batches) for batches in per_rank] == [5, 5]
        counts = np.bincount([clip for batches in per_rank for batch in batches for clip in batch], minlength=11)
        # clips 0-5 FreeSound (one row each), 6 broken and 7 missing (in no shard), 8-10 Clotho (5 rows each)
        expected = np.array([1, 1, 1, 1, 1, 1, 0, 0, 5, 5, 5])
        assert counts.sum() == 20 and np.all(counts <= expected)  # every row at most once, one row dropped
    assert results[0][0, 0] != results[0][0, 1]  # another order each epoch


def test_resume_mid_epoch_continues_with_the_same_batches(shards):
    """Resuming skips this rank's first k batches of the epoch: nothing is seen twice or left out."""
    dataset = open_shard_dataset(str(shards), max_length=1.0)
    sampler = DurationBucketBatchSampler(dataset.durations, batch_size=3, seed=4, drop_last=False)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=2, collate_fn=collate_captions)
    sampler.set_epoch(2)
    whole = [batch["idx"].tolist() for batch in loader]
    sampler.set_epoch(2)
    sampler.set_start_batch(3)
    assert [batch["idx"].tolist() for batch in loader] == whole[3:]


# ----------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------
def test_patterns_that_match_nothing_fail_before_training(shards, tmp_path):
    with pytest.raises(ShardError, match=r"2 of 6 shards .* do not exist: .*shard-000004.tar"):
        expand_shard_urls(f"{shards}/shard-{{000000..000004}}.tar::{shards}/other.tar")
    with pytest.raises(ShardError, match="manifest.*not found"):
        open_shard_dataset(str(tmp_path))
    with pytest.raises(ShardError, match="names no shard"):
        expand_shard_urls([])


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_shard_is_an_error_naming_it(shards, tmp_path, damage):
    copy = tmp_path / "copy"
    shutil.copytree(shards, copy)
    target = copy / "shard-000001.tar"
    data = target.read_bytes()
    target.write_bytes(b"\x00garbage" * 200 if damage == "garbage" else data[:len(data) // 2])
    dataset = open_shard_dataset(str(copy), max_length=1.0)
    assert dataset[0]["idx"] == 0  # other shards read
    with pytest.raises(ShardError, match="shard-000001.tar"):
        dataset[4]


def test_remote_shards_are_copied_to_the_cache(shards, tmp_path):
    urls = [f"pipe:cat {shards}/shard-{k:06d}.tar" for k in range(4)]
    with pytest.raises(ShardError, match="shards_manifest"):
        open_shard_dataset(urls)
    with pytest.raises(ShardError, match="shard_cache"):
        open_shard_dataset(urls, str(shards / "manifest.json"))[0]
    dataset = open_shard_dataset(urls, str(shards / "manifest.json"), cache_dir=tmp_path / "cache", max_length=1.0)
    local = open_shard_dataset(str(shards), max_length=1.0)
    torch.manual_seed(0)
    got = dataset[20]
    torch.manual_seed(0)
    assert torch.equal(got["audio"], local[20]["audio"]) and got["path"].startswith("pipe:cat")
    assert sorted(path.name for path in (tmp_path / "cache").glob("shard-*")) == ["shard-000003.tar"]
    broken = [f"pipe:head -c 5000 {shards}/shard-000001.tar"]
    with pytest.raises(ShardError, match="5000 bytes downloaded"):
        open_shard_dataset(broken, str(shards / "manifest.json"), cache_dir=tmp_path / "cache2")[0]


def test_pretrain_reports_bad_shards_in_one_line(tiny_config, tmp_path, capsys):
    import yaml

    from pretrain import main

    config = {**tiny_config, "output_dir": str(tmp_path / "out"),
              "data_args": {"shards": str(tmp_path / "nowhere-{0..3}.tar"), "num_workers": 0}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    assert main(["-c", str(tmp_path / "bad.yaml")]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: 4 of 4 shards") and "nowhere-0.tar" in error


@pytest.mark.slow
def test_trainer_resumes_from_shards_with_workers(tiny_config, synthetic_corpus, tmp_path, monkeypatch):
    """Stopped after 2 of 4 steps and resumed from last.pt, training sees the batches (rows) of an
    uninterrupted run, each once; the crops of the resumed batches are drawn anew."""
    import signal

    from data_handling.synthetic.corpus import corpus_paths
    from tools.config import parse_config
    from tools.train.trainer import Trainer, TrainingInterrupted

    out = tmp_path / "shards"
    assert shards_main(["--json-files", corpus_paths(synthetic_corpus)["train_json"], "--out", str(out),
                        "--clips-per-shard", "5"]) == 0
    config = parse_config({**tiny_config, "seed": 3, "training": {"epochs": 1, "amp": "off"},
                           "optim_args": {"lr": 1e-3, "warmup_steps": 0},
                           "data_args": {"shards": str(out), "batch_size": 4, "num_workers": 2,
                                         "pin_memory": False, "drop_last": False}})

    def recording(trainer: Trainer, seen: list, stop_at: int | None = None) -> None:
        forward_backward, optimizer_step = trainer._forward_backward, trainer._optimizer_step

        def record(batch, sync):
            seen.append(batch["idx"].tolist())
            return forward_backward(batch, sync=sync)

        def step():
            optimizer_step()
            if trainer.global_step == stop_at:
                os.kill(os.getpid(), signal.SIGTERM)

        monkeypatch.setattr(trainer, "_forward_backward", record)
        monkeypatch.setattr(trainer, "_optimizer_step", step)

    straight_batches, resumed_batches = [], []
    straight = Trainer(config, tmp_path / "straight")
    recording(straight, straight_batches)
    straight.fit()
    interrupted = Trainer(config, tmp_path / "resumed")
    recording(interrupted, resumed_batches, stop_at=2)
    with pytest.raises(TrainingInterrupted):
        interrupted.fit()
    resumed = Trainer(config, tmp_path / "resumed")
    recording(resumed, resumed_batches)
    resumed.fit(resume="auto")
    assert len(straight_batches) == 4 and resumed.global_step == straight.global_step == 4
    assert resumed_batches == straight_batches
