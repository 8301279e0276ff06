"""Open-vocabulary detection and search on recordings of any length (detect.py, search.py; docs/detection.md,
docs/search.md).

    inputs.py       audio files / folders / lists, text queries
    streaming.py    files -> frame embeddings, long files window by window (bounded memory)
    events.py       frame scores -> decision curves -> events (median filter, gap joining, minimum length)
    detector.py     files x queries -> FileDetection per file
    outputs.py      score files (sed_scores_eval), events.tsv, detections.json, figures
    calibration.py  labelled development set -> thresholds per class (best collar F1)
    scoring.py      written outputs and search hits scored against strong labels
    index.py        the search index (float16 clip and frame embeddings, incremental)
    approximate.py  the search index's approximate part for large collections (faiss, re-ranked exactly)
    search_results.py  phrases or a span -> the search page's data (ranked files, curves, best spans)
    server.py       the search page (FastAPI; search.py serve), templates/search.html
"""
