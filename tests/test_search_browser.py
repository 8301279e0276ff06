"""The search page in a real browser: headless Chromium loads /?q=... from `search.py serve`'s app (uvicorn on
a free local port) over an index of real audio whose answer is known, and the rendered page shows it.

Needs Chromium (Debian's `chromium` package; .ci/run installs it): skipped, with the reason, without it.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import uvicorn

from models.factory import model_from_checkpoint
from models.windowing import FRAME_HOP_SECONDS
from tests.conftest import write_tiny_checkpoint
from tests.random_index import class_query, planted_event_index
from tools.detect.calibration import read_labelled_set
from tools.detect.server import create_app
from tools.tiny_model import tiny_config_dict

CHROMIUM = next((found for name in ("chromium", "chromium-browser", "google-chrome")
                 if (found := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install "
                                "chromium; .ci/run installs it), so the page cannot be checked in a browser")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tiny_text_dir, synthetic_corpus, tmp_path_factory) -> Iterator[tuple[str, object]]:
    """(base URL, labelled set) of the page over the synthetic SED split's audio, embeddings planted from its
    strong labels, served by uvicorn in a thread."""
    folder = tmp_path_factory.mktemp("browser")
    model = model_from_checkpoint(write_tiny_checkpoint(tiny_config_dict(tiny_text_dir), folder), None, "cpu")
    labelled = read_labelled_set(synthetic_corpus / "sed" / "metadata" / "eval.tsv")
    index = planted_event_index(model, labelled, folder / "index")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(index, model), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", labelled
    server.should_exit = True
    thread.join(timeout=10)


def chromium(url: str, folder: Path, *options: str) -> str:
    """Run headless Chromium on `url` (scripts and images loaded, virtual time budget 10 s); its stdout."""
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={folder / 'profile'}", "--window-size=1280,1000", "--virtual-time-budget=10000",
               *options, url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout


def rendered_results(dom: str) -> list[dict[str, str]]:
    """Each result element's attributes (data-name, data-picture, data-audio-seconds) and best span text."""
    results = []
    for element in re.findall(r'<li class="result"([^>]*)>(.*?)</li>', dom, flags=re.S):
        attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', element[0]))
        attributes["span"] = re.search(r'class="span" data-onset="([\d.]+)" data-offset="([\d.]+)"', element[1]).groups()
        results.append(attributes)
    return results


@pytest.mark.slow
def test_page_in_chromium_shows_the_known_file_and_span(served, tmp_path):
    base, labelled = served
    clip_id, (onset, offset, label) = next((clip, events[0]) for clip, events in labelled.ground_truth.items()
                                           if events and events[0][1] - events[0][0] >= 1.0)
    same_class = {clip for clip, events in labelled.ground_truth.items() if any(e[2] == label for e in events)}
    url = f"{base}/?{urlencode({'q': class_query(label), 'k': 3})}"
    dom = chromium(url, tmp_path, "--dump-dom")
    results = rendered_results(dom)
    assert len(results) == 3
    top = results[0]
    assert Path(top["data-name"]).stem in same_class                        # a file holding the class
    events = [event for event in labelled.ground_truth[Path(top["data-name"]).stem] if event[2] == label]
    shown_onset, shown_offset = map(float, top["span"])
    assert any(abs(shown_onset - event[0]) <= FRAME_HOP_SECONDS and abs(shown_offset - event[1]) <= FRAME_HOP_SECONDS
               for event in events), (top["span"], events)
    assert top.get("data-picture") == "shown"                               # the spectrogram image loaded
    assert float(top["data-audio-seconds"]) == pytest.approx(labelled.durations[Path(top["data-name"]).stem],
                                                             abs=0.05)      # the audio is playable
    screenshot = tmp_path / "search_page.png"
    chromium(url, tmp_path, f"--screenshot={screenshot}")
    assert screenshot.is_file() and screenshot.read_bytes().startswith(b"\x89PNG")
