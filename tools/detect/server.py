"""The search page: a FastAPI app over a loaded model and index (`python search.py serve`).

    GET /?q=PHRASES&rank=clip|frame&k=10             the page (PHRASES: one per line; the URL is the result)
    GET /?like=ID&start=FRAME&end=FRAME              "more like this": files like that span's audio
    GET /api/search?...                              the same, as JSON (tools.detect.search_results layout)
    GET /audio/{ID}                                  the audio file of listed file ID (range requests work)
    GET /spectrogram/{ID}                            its log-mel (first 10 minutes) as a PNG

Files are named by their position in the index (ID), never by a path from the request; an ID that is not
in the index, or whose file has gone since indexing, is 404. Phrases are limited in number and length
(400 otherwise). The model and index are loaded once, by `create_app`.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from torch import nn

from data_handling.audio_io import AudioReadError, load_audio
from models.runtime import unwrap
from tools.detect.index import SearchIndex
from tools.detect.outputs import PLOT_MAX_SECONDS
from tools.detect.search_results import (
    MAX_PHRASE_CHARS,
    MAX_PHRASES,
    MAX_TOP_K,
    RANKS,
    check_top_k,
    like_results,
    parse_phrases,
    text_results,
)
from tools.eval.embedding import log_mel_spectrogram
from tools.eval.plots import spectrogram_png

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
TORCH_THREADS = 1
"""Torch threads while serving: requests run side by side (FastAPI's thread pool), each on one core; a short
text's forward pass gains little from a second thread and, when other processes keep the cores busy, two
threads waiting on each other make a query many times slower."""
SPECTROGRAMS_KEPT = 64
"""PNG images kept in memory (the most recently asked)."""
CURVE_COLOURS = ("#4fc3f7", "#ffb74d", "#81c784", "#e57373", "#ba68c8", "#fff176", "#4db6ac", "#f06292")
TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                        autoescape=select_autoescape(["html"]))
log = logging.getLogger(__name__)


def warn_if_public(host: str) -> None:
    if host not in LOCAL_HOSTS:
        log.warning("serving on %s: anyone who can reach this address can search the index and listen to its "
                    "files; use --host 127.0.0.1 to keep it on this machine", host)


def create_app(index: SearchIndex, model: nn.Module, device: torch.device | None = None, top_k: int = 10,
               rank: str = "clip") -> FastAPI:
    """The page's app. Refuses (ValueError) an index built with another model or holding no file."""
    index.check_model(model)
    if not index.files:
        raise ValueError(f"the index in {index.folder} holds no file; add some with 'search.py add'")
    check_top_k(top_k)
    app = FastAPI(title="MGA-CLAP search", docs_url=None, redoc_url=None, openapi_url=None)
    spectrograms: OrderedDict[int, bytes] = OrderedDict()

    def answer(params: dict[str, str]) -> dict[str, Any] | None:
        """The results for the request's parameters; None for an empty query; HTTP 400 for bad ones."""
        try:
            chosen_rank = params.get("rank") or rank
            if chosen_rank not in RANKS:
                raise ValueError(f"rank must be one of {', '.join(RANKS)}, got {chosen_rank!r}")
            chosen_k = check_top_k(_integer(params, "k", top_k))
            if params.get("like"):
                position = _listed(index, _integer(params, "like", 0))
                return like_results(index, position, _integer(params, "start", 0), _integer(params, "end", 0),
                                    chosen_k, chosen_rank)
            phrases = parse_phrases(params.get("q", ""))
            if not phrases:
                return None
            return text_results(index, model, phrases, chosen_k, chosen_rank, device)
        except ValueError as error:
            raise HTTPException(status_code=400, detail=str(error)) from error

    @app.get("/api/search")
    def search_json(request: Request) -> dict[str, Any]:
        found = answer(dict(request.query_params))
        if found is None:
            raise HTTPException(status_code=400, detail="no phrase given: pass q=PHRASE (one phrase per line)")
        return found

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request) -> HTMLResponse:
        params = dict(request.query_params)
        try:
            found, error, status = answer(params), None, 200
        except HTTPException as problem:
            found, error, status = None, problem.detail, problem.status_code
        html = TEMPLATES.get_template("search.html").render(
            query=params.get("q", ""), rank=params.get("rank") or rank, top_k=params.get("k") or top_k,
            found=found, figures=[_figure(result) for result in (found or {}).get("results", [])],
            colours=CURVE_COLOURS, error=error, num_files=len(index.files), max_phrases=MAX_PHRASES,
            max_chars=MAX_PHRASE_CHARS, max_top_k=MAX_TOP_K)
        return HTMLResponse(html, status_code=status)

    @app.get("/audio/{file_id}")
    def audio(file_id: str) -> FileResponse:
        return FileResponse(_existing_file(index, file_id)[1])

    @app.get("/spectrogram/{file_id}")
    def spectrogram(file_id: str) -> Response:
        file_id, path = _existing_file(index, file_id)
        if file_id not in spectrograms:
            ase = unwrap(model)
            try:
                waveform = load_audio(path, sample_rate=ase.sample_rate, max_seconds=PLOT_MAX_SECONDS)
            except AudioReadError as error:
                raise HTTPException(status_code=404, detail=f"file {file_id} cannot be read: {error}") from error
            spectrograms[file_id] = spectrogram_png(log_mel_spectrogram(model, torch.from_numpy(waveform)))
            while len(spectrograms) > SPECTROGRAMS_KEPT:
                spectrograms.popitem(last=False)
        spectrograms.move_to_end(file_id)
        return Response(spectrograms[file_id], media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})

    return app


def _integer(params: dict[str, str], name: str, default: int) -> int:
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {text[:20]!r}") from None


def _listed(index: SearchIndex, file_id: int) -> int:
    if not 0 <= file_id < len(index.files):
        raise ValueError(f"no file {file_id} in the index (it lists {len(index.files)})")
    return file_id


def _existing_file(index: SearchIndex, file_id: str) -> tuple[int, Path]:
    """(position, path) of the listed file whose ID is the text `file_id`; HTTP 404 when the text is not the
    number of a listed file or the file no longer exists. The path comes from the index, never the request."""
    if not (file_id.isascii() and file_id.isdigit() and int(file_id) < len(index.files)):
        raise HTTPException(status_code=404, detail=f"no file {file_id[:40]!r} in the index")
    position = int(file_id)
    path = Path(index.files[position].path)
    if not path.is_file():
        raise HTTPException(status_code=404, detail=f"file {position} is missing (deleted or moved since indexing)")
    return position, path


def _figure(result: dict[str, Any]) -> dict[str, Any]:
    """SVG geometry of a result's picture (viewBox 1000 x 100): one polyline per curve, one band per span."""
    curves = result["curves"]
    values = [value for curve in curves for value in curve]
    low, high = min(values), max(values)
    scale = (high - low) or 1.0
    seconds = result["view_seconds"] or 1.0

    def x(time: float) -> float:
        return round(1000.0 * min(time, seconds) / seconds, 2)

    lines = []
    for curve in curves:
        points = [f"{x((frame + 0.5) * result['frame_hop'])},{round(95 - 90 * (value - low) / scale, 2)}"
                  for frame, value in enumerate(curve)]
        lines.append(" ".join(points))
    bands = [{"x": x(span["onset"]), "width": max(0.5, x(span["offset"]) - x(span["onset"]))}
             for span in result["spans"]]
    return {"lines": lines, "bands": bands, "low": low, "high": high}
