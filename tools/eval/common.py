"""What every zero-shot protocol shares: which files a score covers (and --strict), dataset checks, prompts, long-audio modes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from models.windowing import LONG_AUDIO_MODES
from tools.eval.embedding import AudioEmbeddings

DEFAULT_LONG_AUDIO = {"retrieval": "crop", "sed": "cut", "grounding": "window"}
"""Audio longer than 10 s when eval.long_audio is null: the reference's handling (retrieval: a random crop;
SED: the first 10 s); grounding, where the reference's branch fails on such audio: every 10 s window.
Classification datasets carry their own (tools.eval.classification.CLASSIFICATION_PROTOCOLS)."""


MAX_NAMED_FILES = 10
"""Unscored files named in a --strict error (all of them are in the results json without --strict)."""


STRICT_EXIT_CODE = 1
"""Exit status of a script (or pretrain.py at start-up) whose --strict / eval.strict evaluation found a missing or
unreadable file; other errors of the scripts exit with 2."""


class IncompleteEvaluationError(RuntimeError):
    """eval.strict (--strict): a file of the evaluation set is missing or unreadable, so no score is given."""


log = logging.getLogger(__name__)


def missing_audio(path: str | Path, audio_paths: Sequence[str | Path]) -> dict[str, Any]:
    """What `check_evaluation_sets` expects of one set: set (its path), num_files (clips listed), missing (the
    paths without an audio file)."""
    missing = [str(audio) for audio in audio_paths if not Path(audio).is_file()]
    return {"set": str(path), "num_files": len(audio_paths), "missing": missing}


def check_evaluation_sets(paths: Sequence[str | Path], check_one: Callable[[str | Path], dict[str, Any]],
                          setting: str, strict: bool = False, report: bool = True) -> list[dict[str, Any]]:
    """`check_one(path)` of each set listed by the config key `setting` (e.g. "eval.retrieval_jsons"), before any
    training: one log line per set (with `report`), all audio found or how many clips have none.

    check_one returns {"set": path, "num_files": clips listed, "missing": paths of the clips without an audio
    file} and raises FileNotFoundError / ValueError for a set it cannot read.

    Raises:
        IncompleteEvaluationError with `strict` when a set lacks audio (one line naming the files of each);
        FileNotFoundError / ValueError when a set is missing or unreadable (the message names `setting`).
    """
    checks = []
    for path in paths:
        try:
            checks.append(check_one(path))
        except (FileNotFoundError, ValueError) as error:
            raise type(error)(f"{error} (a set of {setting}: fix it, or leave it out of the list; an empty "
                              f"list evaluates nothing during training)") from error
    incomplete = [check for check in checks if check["missing"]]
    if strict and incomplete:
        raise IncompleteEvaluationError(
            "eval.strict: evaluation audio missing: " + "; ".join(
                f"{check['set']}: {len(check['missing'])} of {check['num_files']} clips have no audio file ("
                + ", ".join(check["missing"][:MAX_NAMED_FILES])
                + (", ..." if len(check["missing"]) > MAX_NAMED_FILES else "") + ")" for check in incomplete)
            + f". Restore the files (or fix {setting}), or set eval.strict: false to score the others")
    for check in checks if report else ():
        if check["missing"]:
            log.warning("evaluation set %s: %d of %d clips have no audio file (e.g. %s); each epoch's evaluation "
                        "scores the other %d (eval.strict: true makes this an error)", check["set"],
                        len(check["missing"]), check["num_files"], check["missing"][0],
                        check["num_files"] - len(check["missing"]))
        else:
            log.info("evaluation set %s: audio found for all %d clips", check["set"], check["num_files"])
    return checks


def file_coverage(num_files: int, skipped: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """How much of an evaluation set a score covers.

    Args:
        num_files: M, the audio files the set lists (those the protocol scores).
        skipped: (path, reason) of each listed file that is missing or could not be read.
    Returns:
        complete (every listed file scored), num_files (M), num_scored (N), num_skipped, skipped
        [{"path", "reason"}].
    """
    return {"complete": not skipped, "num_files": num_files, "num_scored": num_files - len(skipped),
            "num_skipped": len(skipped), "skipped": [{"path": str(path), "reason": reason} for path, reason in skipped]}


def skipped_summary(audio: AudioEmbeddings, missing: Sequence[str | Path] = ()) -> dict[str, Any]:
    """`file_coverage` of an embedding run; `missing`: listed files that were not even looked for (no file of
    the clip's name was found), which count as skipped too."""
    skipped = [(str(path), "missing") for path in missing] + list(audio.skipped)
    return file_coverage(audio.clip.shape[0] + len(skipped), skipped)


def require_complete(coverage: dict[str, Any], source: str | Path, strict: bool) -> None:
    """With `strict`, raise IncompleteEvaluationError naming the unscored files of `source`; else nothing."""
    if not strict or coverage["complete"]:
        return
    skipped = coverage["skipped"]
    named = "; ".join(f"{entry['path']} ({entry['reason']})" for entry in skipped[:MAX_NAMED_FILES])
    more = f"; and {len(skipped) - MAX_NAMED_FILES} more" if len(skipped) > MAX_NAMED_FILES else ""
    raise IncompleteEvaluationError(
        f"{len(skipped)} of {coverage['num_files']} audio file(s) of {source} are missing or unreadable: {named}{more}. "
        f"--strict (eval.strict) scores only the whole set: restore these files, or run without --strict to score "
        f"the {coverage['num_scored']} others")


def coverage_line(result: Mapping[str, Any]) -> str | None:
    """'scored N of M files' (and what happened to the others) of a result with `file_coverage` keys; None
    for a result without them."""
    if "num_files" not in result or "num_scored" not in result:
        return None
    line = f"scored {result['num_scored']} of {result['num_files']} files"
    if result.get("complete", True):
        return line + " (complete)"
    first = result["skipped"][0]
    return (line + f": {result['num_skipped']} missing or unreadable, e.g. {first['path']} ({first['reason']}); "
                   f"all listed under 'skipped' of the results json (complete: false); --strict makes this an error")


def require_embeddings(audio: AudioEmbeddings, source: str | Path) -> None:
    """Raise when no file of `source` could be embedded."""
    if audio.clip.shape[0] == 0:
        first = f" (first: {audio.skipped[0][0]}: {audio.skipped[0][1]})" if audio.skipped else ""
        raise FileNotFoundError(f"no audio file of {source} could be read: {audio.num_skipped} skipped{first}; "
                                f"check the audio folder and the file names in the metadata")


def require_dir(path: str | Path, layout: str) -> Path:
    """Path of an existing folder, else FileNotFoundError naming it and the expected layout."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"dataset folder {path} not found; expected {layout}")
    return path


def make_prompts(class_names: Sequence[str], prompt_template: str) -> list[str]:
    """One prompt per class: prompt_template with '{}' replaced by the class name."""
    if prompt_template.count("{}") != 1:
        raise ValueError(f"prompt_template must contain '{{}}' once (where the class name goes), "
                         f"got {prompt_template!r}")
    return [prompt_template.replace("{}", name) for name in class_names]


def long_audio_mode(task: str, long_audio: str | None, default: str | None = None) -> str:
    """The long-audio handling of a task: `long_audio` when given, else `default`, else DEFAULT_LONG_AUDIO[task].

    A crop is refused for SED and grounding, whose timestamps count from the file's start.
    """
    mode = long_audio or default or DEFAULT_LONG_AUDIO[task]
    if mode not in LONG_AUDIO_MODES:
        raise ValueError(f"long_audio must be one of {LONG_AUDIO_MODES} (or None: the task's default), got {mode!r}")
    if mode == "crop" and task in ("sed", "grounding"):
        raise ValueError(f"long_audio 'crop' does not suit {task}: its timestamps count from the start of the file; "
                         f"use 'cut' (the first 10 s) or 'window' (every 10 s window)")
    return mode


