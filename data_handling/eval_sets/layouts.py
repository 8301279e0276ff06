"""Where each evaluation set's files lie under eval.data_root_dir: the reference's parent folder of every
dataset (ESC-50-master/, UrbanSound8K/, VGGSound/, AudioSet_SL/, TAG/test/) or a dataset's own folder.

`EVAL_LAYOUTS` lists, per task, the layouts tried in order; `find_eval_files` returns the files of the first
that exists under a root, or says which paths each layout expects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from data_handling.synthetic import corpus_exists


@dataclass(frozen=True)
class EvalLayout:
    """One way an evaluation set can lie under a root folder.

    folder: the dataset's folder relative to the root ("" = the root itself).
    files: role -> path relative to `folder` (a trailing "/" marks a folder); all must exist.
    optional: role -> path relative to `folder`, used when it exists.
    """

    description: str
    folder: str
    files: Mapping[str, str]
    optional: Mapping[str, str] = field(default_factory=dict)

    def paths(self, root: Path) -> dict[str, Path]:
        base = root / self.folder
        return {role: base / relative.rstrip("/") for role, relative in {**self.files, **self.optional}.items()}

    def matches(self, root: Path) -> bool:
        base = root / self.folder
        return all((base / relative).is_dir() if relative.endswith("/") else (base / relative).is_file()
                   for relative in self.files.values())

    def listing(self, root: Path) -> str:
        base = root / self.folder
        return f"{self.description}: " + ", ".join(str(base / relative) + ("/" if relative.endswith("/") else "")
                                                  for relative in self.files.values())


REFERENCE_PARENT = "the reference's data_root_dir (a parent folder of every dataset)"
EVAL_LAYOUTS: dict[str, tuple[EvalLayout, ...]] = {
    "esc50": (
        EvalLayout("ESC-50 folder", "", {"audio": "audio/", "csv": "meta/esc50.csv"}),
        EvalLayout(REFERENCE_PARENT, "ESC-50-master", {"audio": "audio/", "csv": "meta/esc50.csv"}),
    ),
    "urbansound8k": (
        EvalLayout("UrbanSound8K folder", "", {"audio": "audio/", "csv": "metadata/UrbanSound8K.csv"}),
        EvalLayout(REFERENCE_PARENT, "UrbanSound8K", {"audio": "audio/", "csv": "metadata/UrbanSound8K.csv"}),
    ),
    "vggsound": (
        EvalLayout("VGGSound folder with the full csv (youtube_id,start_seconds,label,split)", "",
                   {"audio": "audio/", "csv": "vggsound.csv"}),
        EvalLayout(REFERENCE_PARENT, "VGGSound", {"audio": "audio/", "test_csv": "metadata/vggsound_test.csv"}),
        EvalLayout("VGGSound folder with the test csv (filename,class)", "",
                   {"audio": "audio/", "test_csv": "metadata/vggsound_test.csv"}),
    ),
    "sed": (
        EvalLayout("SED folder", "", {"audio": "audio/", "events": "metadata/eval.tsv",
                                      "durations": "metadata/eval_durations.tsv"}),
        EvalLayout(REFERENCE_PARENT, "AudioSet_SL", {"audio": "audio/AudioSet_SL_eval/",
                                                     "events": "metadata/audioset_eval_strong.tsv",
                                                     "durations": "metadata/audioset_eval_strong_durations.tsv"}),
        EvalLayout("AudioSet_SL folder", "", {"audio": "audio/AudioSet_SL_eval/",
                                              "events": "metadata/audioset_eval_strong.tsv",
                                              "durations": "metadata/audioset_eval_strong_durations.tsv"}),
    ),
    "grounding": (
        EvalLayout("AudioGrounding folder", "", {"audio": "audio/", "json": "test.json"}),
        EvalLayout(REFERENCE_PARENT, "TAG/test", {"audio": "audio/", "json": "metadata/test.json"},
                   {"durations": "metadata/duration.csv"}),
        EvalLayout("TAG test folder", "", {"audio": "audio/", "json": "metadata/test.json"},
                   {"durations": "metadata/duration.csv"}),
    ),
    "retrieval": (
        EvalLayout("retrieval folder", "", {"json": "test.json"}),
    ),
}
"""Per task, the layouts `find_eval_files` tries, in order. Roles: audio (folder), csv / test_csv
(classification metadata), events and durations (SED tsv), json (grounding or retrieval), durations
(grounding, optional)."""


class EvalFiles(NamedTuple):
    """The files of one evaluation set: its folder, role -> path, and the layout that matched."""

    folder: Path
    paths: dict[str, Path]
    layout: str


def find_eval_files(root: str | Path, task: str) -> EvalFiles:
    """Detect which of the task's layouts (`EVAL_LAYOUTS`) lies under `root` and return its files.

    Raises:
        FileNotFoundError: `root` is not a folder, or no layout matches (the message lists every layout tried
            with its expected paths).
    """
    if task not in EVAL_LAYOUTS:
        raise ValueError(f"unknown evaluation task {task!r}; expected one of {sorted(EVAL_LAYOUTS)}")
    root = Path(root)
    layouts = EVAL_LAYOUTS[task]
    tried = "\n".join(f"  - {layout.listing(root)}" for layout in layouts)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} not found; the {task} layouts are:\n{tried}")
    for layout in layouts:
        if layout.matches(root):
            paths = {role: path for role, path in layout.paths(root).items()
                     if role in layout.files or path.exists()}
            return EvalFiles(root / layout.folder, paths, layout.description)
    raise FileNotFoundError(f"no {task} dataset found under {root}; the layouts tried (each path must exist):\n"
                            f"{tried}\nPass --data-root with the folder of one of them.")


SYNTHETIC_SPLITS = {"retrieval": "retrieval", "sed": "sed", "grounding": "grounding", "esc50": "esc50"}


def task_root(root: str | Path, task: str) -> Path:
    """The dataset folder of a task: `root` itself, or its split folder when `root` is a synthetic corpus.

    task: retrieval | sed | grounding | esc50 | urbansound8k | vggsound.
    """
    root = Path(root)
    if corpus_exists(root):
        if task not in SYNTHETIC_SPLITS:
            raise FileNotFoundError(f"{root} is the synthetic corpus, which has no {task} split (it has "
                                    f"{sorted(SYNTHETIC_SPLITS)}); pass --data-root with the {task} dataset folder")
        return root / SYNTHETIC_SPLITS[task]
    return root
