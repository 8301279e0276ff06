"""What the detection and search scripts are given: audio files, folders or file lists; text queries.

    audio sources: an audio file (AUDIO_EXTENSIONS), a folder (searched recursively for audio files), or
                   a text file listing one audio path per line (relative paths from the list's folder;
                   blank lines and lines starting with '#' ignored)
    queries:       texts on the command line and/or a file with one query per line (same rules)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from data_handling.audio_paths import AUDIO_EXTENSIONS
from data_handling.class_names import merge_class_names
from data_handling.eval_sets.sed import SED_EVENT_COLUMNS, SED_EVENTS_LAYOUT
from data_handling.metadata_files import METADATA_ENCODING, read_tsv_columns


def _lines(path: Path, what: str) -> list[str]:
    """Non-blank lines of a text file that do not start with '#', stripped."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found; expected a text file with one entry per line")
    lines = (line.strip() for line in path.read_text(encoding=METADATA_ENCODING).splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS


def collect_audio_files(sources: Sequence[str | Path]) -> list[Path]:
    """Audio paths from files, folders (recursive, sorted) and file lists, in the order given, each once.

    A listed path that does not exist is kept (it is then skipped and reported as unreadable); a source
    that is neither an audio file, a folder nor a readable list is an error, as is finding no audio at all.
    """
    if not sources:
        raise ValueError("no audio given; pass audio files, folders or a text file listing audio paths")
    found: list[Path] = []
    for source in (Path(source).expanduser() for source in sources):
        if source.is_dir():
            in_folder = sorted(path for path in source.rglob("*") if path.is_file() and is_audio_file(path))
            if not in_folder:
                raise FileNotFoundError(f"folder {source} holds no audio file ({', '.join(AUDIO_EXTENSIONS)}); "
                                        f"check the path")
            found += in_folder
        elif is_audio_file(source) or not source.exists():
            found.append(source)
        else:
            found += [path if path.is_absolute() else source.parent / path
                      for path in map(Path, _lines(source, "audio file list"))]
    unique = list(dict.fromkeys(found))
    if not unique:
        raise FileNotFoundError(f"no audio file in {[str(source) for source in sources]}")
    return unique


def collect_queries(texts: Iterable[str] = (), queries_file: str | Path | None = None) -> list[str]:
    """Queries from the command line, then the file's lines; whitespace collapsed, duplicates dropped."""
    queries = [" ".join(text.split()) for text in texts]
    if queries_file is not None:
        queries += [" ".join(line.split()) for line in _lines(Path(queries_file), "queries file")]
    queries = list(dict.fromkeys(query for query in queries if query))
    if not queries:
        raise ValueError("the query list is empty; pass --query TEXT (repeatable), --queries-file FILE (one "
                         "query per line) or --classes-from TSV")
    return queries


def classes_from_tsv(tsv: str | Path) -> list[str]:
    """The SED protocol's class names of a DESED / AudioSet-strong tsv: its event labels, '_' -> ' ', lower
    case, sorted (as `data_handling.eval_sets.sed.read_sed_tsv` names them)."""
    rows = read_tsv_columns(Path(tsv), "SED tsv", SED_EVENT_COLUMNS, SED_EVENTS_LAYOUT)
    labels = sorted({label.strip() for *_, label in rows if label.strip()})
    if not labels:
        raise ValueError(f"{tsv} has no event label; nothing to take queries from")
    return sorted(merge_class_names(labels, lower=True)[0])
