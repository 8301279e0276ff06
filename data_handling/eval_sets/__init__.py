"""Readers of the evaluation sets, one module per task: retrieval.py (Clotho / AudioCaps caption json),
classification.py (ESC-50, UrbanSound8K, VGGSound), sed.py (AudioSet-strong / DESED tsv), grounding.py
(AudioGrounding json); layouts.py detects where a set lies under eval.data_root_dir (`find_eval_files`).

Every reader returns plain python structures and raises FileNotFoundError / ValueError that names the
expected path and layout when something is missing or malformed. Class names are normalised by
data_handling/class_names.py; audio files are found by data_handling/audio_paths.py.
"""
