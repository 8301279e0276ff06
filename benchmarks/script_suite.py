"""End-to-end benchmark of every zero-shot script and of the training loop, as users run them, on generated
data sets shaped like the real ones.

    python -m benchmarks.script_suite [--preset paper|tiny] [--tasks esc50,sed,grounding,retrieval,train]
        [--clips esc50=312,sed=200,grounding=100,retrieval=100] [--repeats 1] [--model-repeats 10] [--device cpu|cuda]
        [--train-steps 20,200] [--workdir /tmp/mga_clap_suite] [--out FILE.json]

Data (written once, kept in --workdir; a tone over noise, mono 16-bit):
- esc50: ESC-50's layout and files, 5 s at 44.1 kHz WAV (benchmarks.scripts.make_esc50);
- sed: AudioSet-strong as WavCaps ships it (the reference's AudioSet_SL folder): 10 s FLAC at 32 kHz, two
  events per clip among 10 labels, audioset_eval_strong.tsv + durations;
- grounding: AudioGrounding's layout (AudioCaps clips): 10 s WAV at 44.1 kHz, two phrases per clip;
- retrieval: Clotho's evaluation set: 15-30 s WAV at 44.1 kHz, five captions per clip, a retrieval json.

For each script: its command line as a subprocess (`--repeats`, median wall: the user's number), then one run
of its `main` in a fresh process with timers around the stages (`run_split`): import, config + model load,
audio embedding (of which the model's forward passes and the wait for the loader), text embedding, the rest
(metrics, metadata, output). Apart from the script: decoding + resampling every file in one process
(`AudioFileDataset`, what a loader process does), and the model alone at the script's batch size
(benchmarks.steps' infer step on 10 s clips: every protocol here encodes 10 s inputs), and the text tower
alone on the script's own texts (`embed_texts` called again with the same arguments: prompts, class names,
phrases or captions). The ratio `evaluation / (model x clips + decode + text tower)` says how close the
script comes to the speed of the model's own forward passes; the rest is loading overhead and metrics.

Training (`train`): `pretrain.py -c settings/quickstart.yaml` for two step counts (`--train-steps`), one epoch
each; the difference gives the time per step without start-up and the end-of-epoch evaluation.
"""

from __future__ import annotations

# Only the standard library at the top: the split child times the script's imports from a fresh process.
import argparse
import csv
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.scripts import REPO_ROOT, make_checkpoint, make_esc50, python_startup_s, timed_run

DEFAULT_WORKDIR = Path("/tmp/mga_clap_suite")
TASKS = ("esc50", "sed", "grounding", "retrieval", "train")
DEFAULT_CLIPS = {"esc50": 312, "sed": 200, "grounding": 100, "retrieval": 100}
SCRIPTS = {"esc50": "zero_shot_clas.py", "sed": "zero_shot_sed.py", "grounding": "zero_shot_grounding.py",
           "retrieval": "zero_shot_retrieval.py"}
PROTOCOL_MODULES = {"esc50": "tools.eval.classification", "sed": "tools.eval.sed",
                    "grounding": "tools.eval.grounding", "retrieval": "tools.eval.retrieval"}
LABELS = ("dog_bark", "siren", "engine", "bell", "speech", "rain", "knock", "whistle", "hum", "bird_chirp")


# ---------------------------------------------------------------------------------------------- data
def _signal(seconds: float, rate: int, seed: int) -> Any:
    """A tone (pitch from the seed) over noise, float32 [samples]."""
    import numpy as np

    rng = np.random.default_rng(seed)
    times = np.arange(round(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * (150.0 + 37.0 * (seed % 60)) * times)
            + 0.05 * rng.standard_normal(times.shape)).astype(np.float32)


def _made(folder: Path, count: int) -> bool:
    stamp = folder / "MADE"
    return stamp.is_file() and stamp.read_text().strip() == str(count)


def _write_rows(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(header)
        writer.writerows(rows)


def make_sed(workdir: Path, count: int) -> Path:
    """AudioSet_SL/ (audio/AudioSet_SL_eval/*.flac, metadata/audioset_eval_strong.tsv and _durations.tsv)."""
    import soundfile

    root = workdir / "AudioSet_SL"
    if _made(root, count):
        return root
    audio = root / "audio" / "AudioSet_SL_eval"
    audio.mkdir(parents=True, exist_ok=True)
    events, durations = [], []
    for index in range(count):
        name = f"Y{index:08d}.flac"
        soundfile.write(audio / name, _signal(10.0, 32000, index), 32000, subtype="PCM_16")
        onset = 0.5 + (index % 7)
        events += [[name, onset, onset + 2.0, LABELS[index % len(LABELS)]],
                   [name, 1.0, 4.5, LABELS[(3 * index + 1) % len(LABELS)]]]
        durations.append([name, 10.0])
    _write_rows(root / "metadata" / "audioset_eval_strong.tsv", ["filename", "onset", "offset", "event_label"],
                events)
    _write_rows(root / "metadata" / "audioset_eval_strong_durations.tsv", ["filename", "duration"], durations)
    (root / "MADE").write_text(f"{count}\n")
    return root


def make_grounding(workdir: Path, count: int) -> Path:
    """An AudioGrounding folder (audio/*.wav at 44.1 kHz, test.json, two phrases per clip)."""
    import soundfile

    root = workdir / "AudioGrounding"
    if _made(root, count):
        return root
    (root / "audio").mkdir(parents=True, exist_ok=True)
    entries = []
    for index in range(count):
        name = f"{index:06d}.wav"
        soundfile.write(root / "audio" / name, _signal(10.0, 44100, index), 44100, subtype="PCM_16")
        first, second = LABELS[index % len(LABELS)].replace("_", " "), LABELS[(index + 4) % len(LABELS)]
        entries.append({"audio_id": name, "audiocap_id": index, "tokens": f"a {first} and then a {second}",
                        "phrases": [{"phrase": f"a {first}", "start_index": 0, "end_index": 1,
                                     "segments": [[1.0, 3.5]]},
                                    {"phrase": f"a {second.replace('_', ' ')}", "start_index": 4, "end_index": 5,
                                     "segments": [[5.0, 9.0]]}]})
    (root / "test.json").write_text(json.dumps(entries))
    (root / "MADE").write_text(f"{count}\n")
    return root


def make_retrieval(workdir: Path, count: int) -> Path:
    """A Clotho-shaped evaluation folder: audio/*.wav of 15-30 s at 44.1 kHz, test.json with five captions."""
    import soundfile

    root = workdir / "Clotho"
    if _made(root, count):
        return root
    (root / "audio").mkdir(parents=True, exist_ok=True)
    data = []
    for index in range(count):
        name, seconds = f"clip_{index:05d}.wav", 15.0 + (index * 7.3) % 15.0
        soundfile.write(root / "audio" / name, _signal(seconds, 44100, index), 44100, subtype="PCM_16")
        label = LABELS[index % len(LABELS)].replace("_", " ")
        data.append({"id": f"clip_{index:05d}", "audio": f"audio/{name}", "duration": seconds,
                     **{f"caption_{k}": f"a {label} heard {word} in the distance number {index}"
                        for k, word in enumerate(("once", "twice", "again", "softly", "loudly"), start=1)}})
    (root / "test.json").write_text(json.dumps({"num_captions_per_audio": 5, "data": data}))
    (root / "MADE").write_text(f"{count}\n")
    return root


MAKERS = {"esc50": make_esc50, "sed": make_sed, "grounding": make_grounding, "retrieval": make_retrieval}


def script_command(task: str, root: Path, ckpt: Path, out: Path, device: str, extra: list[str]) -> list[str]:
    command = [sys.executable, SCRIPTS[task], "--data-root", str(root), "--ckpt", str(ckpt), "--device", device,
               "--out", str(out), *extra]
    return command + (["--dataset", "esc50"] if task == "esc50" else [])


# ---------------------------------------------------------------------------------------------- in-process split
class Timer:
    """Wraps a callable and adds its wall time to a total (the wrapped function itself is unchanged)."""

    def __init__(self, function: Any):
        self.function, self.seconds, self.calls, self.last = function, 0.0, 0, None
        self.arguments: list[tuple[tuple, dict]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        self.arguments.append((args, kwargs))
        try:
            self.last = self.function(*args, **kwargs)
            return self.last
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


def split_child(task: str, argv: list[str], preset: str, model_repeats: int) -> dict[str, Any]:
    """In this (fresh) process: the script's `main` with timers around its stages; then decoding alone and the
    model alone at the script's batch size."""
    import importlib

    start = time.perf_counter()
    script = importlib.import_module(SCRIPTS[task].removesuffix(".py"))
    import_s = time.perf_counter() - start

    import torch

    from models.memory import reuse_freed_memory
    from tools.eval import embedding
    from tools.eval.loader_defaults import eval_batch_size, eval_num_workers

    protocol = importlib.import_module(PROTOCOL_MODULES[task])
    reuse_freed_memory()  # as the scripts' run_script does before main
    patched = [(script, "load_script_model"), (protocol, "embed_audio_files"), (protocol, "embed_texts"),
               (embedding, "_encode_items")]
    timers = {}
    for owner, name in patched:
        timers[name] = Timer(getattr(owner, name))
        setattr(owner, name, timers[name])
    start = time.perf_counter()
    try:
        result = script.main(argv)
    finally:
        for owner, name in patched:
            setattr(owner, name, timers[name].function)
    main_s = time.perf_counter() - start
    load_s = timers["load_script_model"].seconds
    audio_s, model_s, text_s = (timers[name].seconds for name in ("embed_audio_files", "_encode_items", "embed_texts"))
    config = script.load_script_config(script.parse_args(argv))
    model, device = timers["load_script_model"].last
    batch_size = eval_batch_size(config.eval.batch_size, device)
    decode_s, decoded = decode_alone(task, config, model.sample_rate)
    num_clips = result.get("num_clips", decoded)
    start = time.perf_counter()
    for call_args, call_kwargs in timers["embed_texts"].arguments:   # the text tower on the script's own texts
        timers["embed_texts"].function(*call_args, **call_kwargs)
    text_alone_s = time.perf_counter() - start
    return {
        "task": task, "script": SCRIPTS[task], "num_clips": num_clips, "batch_size": batch_size,
        "num_workers": eval_num_workers(config.eval.num_workers, device), "torch_threads": torch.get_num_threads(),
        "device": str(device), "metrics": _headline(result),
        "stages_s": {"import": import_s, "config_and_model_load": load_s, "evaluate": main_s - load_s,
                     "audio_embedding": audio_s, "audio_model": model_s, "audio_waiting_for_loader": audio_s - model_s,
                     "text_embedding": text_s, "metrics_and_other": main_s - load_s - audio_s - text_s},
        "model_calls": timers["_encode_items"].calls,
        "decode_alone": {"seconds": decode_s, "clips": decoded, "s_per_clip": decode_s / max(decoded, 1)},
        "model_alone": model_alone_per_clip(model, preset, batch_size, model_repeats, device),
        "text_alone_s": text_alone_s,
    }


def _headline(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("accuracy_percent", "psds1", "psds2", "psds_0.7", "t2a_R1_percent", "a2t_R1_percent", "num_clips",
            "num_skipped")
    found = {key: result[key] for key in keys if key in result}
    found.update({key: value for key, value in result.items() if key.startswith("psds") and key not in found})
    return found


def decode_alone(task: str, config: Any, sample_rate: int) -> tuple[float, int]:
    """Read, resample and pad every audio file of the task's set in this one process (AudioFileDataset)."""
    from data_handling.eval_sets.layouts import find_eval_files
    from tools.eval.cli import data_root
    from tools.eval.embedding import AudioFileDataset

    files = find_eval_files(data_root(config, task), task)
    if task == "retrieval":
        paths = sorted((files.folder / "audio").glob("*.wav"))
        dataset = AudioFileDataset(paths, sample_rate, "none", long_audio="crop")
    else:
        paths = sorted(path for path in Path(files.paths["audio"]).iterdir() if path.suffix in (".wav", ".flac"))
        dataset = AudioFileDataset(paths, sample_rate, "zero" if task == "esc50" else "tile", long_audio="cut")
    start = time.perf_counter()
    for index in range(len(dataset)):
        dataset[index]
    return time.perf_counter() - start, len(dataset)


def model_alone_per_clip(model: Any, preset: str, batch_size: int, repeats: int, device: Any) -> dict[str, Any]:
    """benchmarks.steps' infer step (encode_audio + msc, 10 s random clips) on the loaded model at the script's
    batch size: one warm-up step, then `repeats` timed ones (median)."""
    from benchmarks.measure import time_steps
    from benchmarks.settings import BenchmarkSettings
    from benchmarks.steps import make_infer_step

    settings = BenchmarkSettings(preset=preset, batch_size=batch_size, device=str(device), warmup=1,
                                 repeats=repeats)
    walls, _ = time_steps(make_infer_step(model, settings), settings)
    step_s = statistics.median(walls)
    return {"batch_size": batch_size, "step_s_all": walls, "step_s_median": step_s, "s_per_clip": step_s / batch_size}


def run_split(task: str, command: list[str], preset: str, model_repeats: int, workdir: Path) -> dict[str, Any]:
    """`split_child` in a fresh process (so that the script's imports are timed from nothing)."""
    out = workdir / f"split_{task}.json"
    out.unlink(missing_ok=True)
    child = [sys.executable, "-m", "benchmarks.script_suite", "--split-child", task, "--preset", preset,
             "--model-repeats", str(model_repeats), "--split-out", str(out), "--", *command[2:]]
    run = timed_run(child, REPO_ROOT)
    if run["returncode"] != 0 or not out.is_file():
        raise RuntimeError(f"the in-process split of {task} failed (exit {run['returncode']}):\n{run['stderr_tail']}")
    return {**json.loads(out.read_text()), "wall_s": run["wall_s"]}


# ---------------------------------------------------------------------------------------------- runs
def floor_ratio(split: dict[str, Any]) -> tuple[float, float]:
    """(evaluation / floor, floor) of one split run; floor = clips x (model alone + decoding per clip) + the text
    tower alone on the script's texts."""
    floor = split["num_clips"] * (split["model_alone"]["s_per_clip"] + split["decode_alone"]["s_per_clip"]) \
        + split["text_alone_s"]
    return split["stages_s"]["evaluate"] / floor, floor


def median_split(splits: list[dict[str, Any]]) -> tuple[float, float, dict[str, Any]]:
    """(ratio, floor, split) of the split run whose ratio is the (low) median of all runs'."""
    ranked = sorted(((*floor_ratio(split), split) for split in splits), key=lambda entry: entry[0])
    return ranked[(len(ranked) - 1) // 2]


def run_script(task: str, root: Path, ckpt: Path, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    out = workdir / f"result_{task}.json"
    command = script_command(task, root, ckpt, out, args.device, args.script_args)
    runs = []
    for _ in range(args.repeats):
        out.unlink(missing_ok=True)
        run = timed_run(command, REPO_ROOT)
        run["result"] = _headline(json.loads(out.read_text())) if run["returncode"] == 0 and out.is_file() else None
        runs.append(run)
    walls = [run["wall_s"] for run in runs]
    splits = [run_split(task, command, args.preset, args.model_repeats, workdir) for _ in range(args.split_repeats)]
    ratio, floor, split = median_split(splits)
    clips = split["num_clips"]
    wall = statistics.median(walls)
    return {"command": command, "succeeded": all(run["returncode"] == 0 for run in runs), "runs": runs,
            "wall_s_median": wall, "wall_s_all": walls, "clips_per_s": clips / wall, "split": split,
            "model_decode_text_s": floor, "evaluation_over_floor": ratio,
            "evaluation_over_floor_all": [floor_ratio(one)[0] for one in splits],
            "wall_over_floor": wall / floor,
            "metrics_match": runs[-1]["result"] is not None and all(
                runs[-1]["result"].get(key) == value for key, value in split["metrics"].items())}


def run_training(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """pretrain.py on the quickstart config for two step counts; the slope is the time per step."""
    counts = [int(value) for value in args.train_steps.split(",")]
    runs = {}
    for steps in counts:
        command = [sys.executable, "pretrain.py", "-c", "settings/quickstart.yaml", "--exp-name",
                   f"suite_train_{steps}", "--set", "training.epochs=1", "--set",
                   f"training.max_steps_per_epoch={steps}", "--set", f"output_dir={workdir / 'train_outputs'}"]
        if args.device != "cpu":
            command += ["--set", f"device={args.device}"]
        for override in args.train_set:
            command += ["--set", override]
        runs[steps] = timed_run(command, REPO_ROOT)
        if runs[steps]["returncode"] != 0:
            raise RuntimeError(f"pretrain.py failed ({steps} steps):\n{runs[steps]['stderr_tail']}")
    low, high = min(counts), max(counts)
    per_step = (runs[high]["wall_s"] - runs[low]["wall_s"]) / (high - low) if high > low else None
    return {"config": "settings/quickstart.yaml", "runs": {str(key): value["wall_s"] for key, value in runs.items()},
            "s_per_step": per_step, "fixed_s": runs[low]["wall_s"] - (per_step or 0) * low}


def build_report(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    clips = {**DEFAULT_CLIPS, **{key: int(value) for key, value in
                                 (item.split("=") for item in args.clips.split(",") if item)}}
    tasks = [task for task in args.tasks.split(",") if task]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise SystemExit(f"unknown task(s) {unknown}; choose among {list(TASKS)}")
    ckpt = make_checkpoint(workdir, args.preset)
    load_before = os.getloadavg()
    report: dict[str, Any] = {"settings": {"preset": args.preset, "clips": clips, "repeats": args.repeats,
                                           "device": args.device, "workdir": str(workdir), "checkpoint": str(ckpt),
                                           "script_args": args.script_args},
                              "python_startup_s": python_startup_s(), "scripts": {}}
    for task in tasks:
        if task == "train":
            report["training"] = run_training(args, workdir)
        else:
            report["scripts"][task] = run_script(task, MAKERS[task](workdir, clips[task]), ckpt, args, workdir)
    import torch
    report["machine"] = {"cpus": os.cpu_count(), "torch": torch.__version__, "python": sys.version.split()[0],
                         "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                         "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    return report


def _ratios(run: dict[str, Any]) -> str:
    """The median ratio, with every split run's in brackets when there were several."""
    ratios = run.get("evaluation_over_floor_all", [])
    spread = f" ({', '.join(f'{ratio:.3f}' for ratio in ratios)})" if len(ratios) > 1 else ""
    return f"{run['evaluation_over_floor']:.3f}{spread}"


def markdown(report: dict[str, Any]) -> str:
    """One row per script: wall, clips/s, the stages, and how close evaluation comes to model + decoding."""
    lines = ["| script | clips | wall s | clips/s | import s | load s | evaluation s | of which model s | "
             "loader wait s | text s | metrics and other s | model alone s/clip | decode s/clip | text alone s | "
             "evaluation / (model + decode + text) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in report["scripts"].values():
        split, stages = run["split"], run["split"]["stages_s"]
        lines.append(f"| {split['script']} | {split['num_clips']} | {run['wall_s_median']:.1f} | "
                     f"{run['clips_per_s']:.2f} | {stages['import']:.1f} | {stages['config_and_model_load']:.1f} | "
                     f"{stages['evaluate']:.1f} | {stages['audio_model']:.1f} | "
                     f"{stages['audio_waiting_for_loader']:.1f} | {stages['text_embedding']:.1f} | "
                     f"{stages['metrics_and_other']:.2f} | "
                     f"{split['model_alone']['s_per_clip']:.4f} | {split['decode_alone']['s_per_clip']:.4f} | "
                     f"{split['text_alone_s']:.1f} | {_ratios(run)} |")
    if report["scripts"]:
        first = next(iter(report["scripts"].values()))["split"]
        lines.append(f"\nbatch {first['batch_size']}, {first['num_workers']} loader processes, "
                     f"{first['torch_threads']} torch threads, device {first['device']}")
    training = report.get("training")
    if training:
        lines.append(f"\ntraining (quickstart config): runs {training['runs']} s; {training['s_per_step']:.3f} s "
                     f"per step, {training['fixed_s']:.1f} s start-up + end-of-epoch evaluation")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="data, checkpoint and run files (kept)")
    parser.add_argument("--preset", default="paper", choices=("paper", "tiny"))
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated, among %(default)s")
    parser.add_argument("--clips", default="", help="task=count,... (defaults: esc50=312,sed=200,grounding=100,"
                                                    "retrieval=100)")
    parser.add_argument("--repeats", type=int, default=1, help="subprocess runs of each script (median)")
    parser.add_argument("--model-repeats", type=int, default=10, help="timed infer steps of the model alone")
    parser.add_argument("--split-repeats", type=int, default=1,
                        help="in-process split runs of each script; the ratio reported is their median, the "
                             "stages those of the median run")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (passed to every script)")
    parser.add_argument("--train-steps", default="20,200", help="two step counts of the training runs")
    parser.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a --set override of the training runs (repeatable), e.g. synthetic.root=DIR")
    parser.add_argument("--out", help="write the JSON report here")
    parser.add_argument("--split-child", help=argparse.SUPPRESS)
    parser.add_argument("--split-out", help=argparse.SUPPRESS)
    parser.add_argument("script_args", nargs="*", help="further options passed to every script, after --")
    args = parser.parse_args(argv)
    if min(args.repeats, args.split_repeats, args.model_repeats) < 1:
        parser.error("--repeats, --split-repeats and --model-repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    if args.split_child:
        result = split_child(args.split_child, args.script_args, args.preset, args.model_repeats)
        Path(args.split_out).write_text(json.dumps(result, indent=1, default=str))
        return None
    report = build_report(args)
    print(markdown(report))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1, default=str) + "\n")
    return report


if __name__ == "__main__":
    main()
