"""Zero-shot evaluation of MGA-CLAP: the protocols (one module per task), their metrics, the batched
embedding of files (embedding.py), figures (plots.py) and the scripts' command line (cli.py); used by the
zero_shot_*.py scripts, the trainer and the quickstart's report card (report_card.py).

Protocols (REFERENCE.md, "Evaluation protocols"); the audio handling of each is set here once, its defaults
the reference's, our extensions switches (tools.config.EvalArgs):
- retrieval: one row per caption, captions preprocessed as in training
  (data_handling.text_preprocess.preprocess_caption); clips numbered by their json position. A clip longer
  than 10 s is evaluated on one random 10 s crop, seeded (eval.crop_seed; eval.long_audio: window encodes
  every window instead); a shorter clip is zero-padded to the longest clip of its first caption's 32-caption
  batch, as the reference's batches are (`reference_padding_spans`; eval.retrieval_padding: fixed pads
  every clip to 10 s).
- classification: mono, 32 kHz, zero-padded to 10 s; VGGSound cut to 10 s (longer ESC-50 / UrbanSound8K
  audio windowed); prompts "<class> can be heard" (ESC-50, VGGSound) or the bare class name
  (UrbanSound8K), '_' -> ' '; prediction = argmax cosine(clip, prompt); ESC-50 / UrbanSound8K averaged
  over folds.
- sound event detection: classes = the distinct event labels, each scored with its text ('_' -> ' ', lower
  case; labels differing only in case or '_' stay separate classes with one text, as in the reference); audio tiled up to 10 s, longer audio cut to its first 10 s (eval.long_audio: window scores
  every window); score = cosine(frame, class) per frame, median filter of 3 frames, all 32 frames scored
  with timestamps i * 10 / 32, also the tiled tail of a short clip (eval.score_tiled_tail: false drops
  it); durations and ground truth from the tsv files; PSDS1, PSDS2, collar and segment F1 over the clips
  with at least one event.
- grounding: per phrase, sigmoid(cosine(phrase, frame)) per frame; audio tiled to 10 s (longer audio
  windowed: the reference cannot run it); durations from the dataset's duration file when it has one,
  else the audio's; detections not clipped to the duration (eval.score_tiled_tail: false clips them);
  PSDS at 0.7 / 0.5 / 0.1 (tools.eval.grounding_metrics.grounding_psds).
Files that cannot be read (missing, undecodable, empty) are skipped: every result says which files its score
covers (`tools.eval.common.file_coverage`: complete, num_files, num_scored, num_skipped, skipped), and with
`strict` (eval.strict, --strict) such a file is an IncompleteEvaluationError naming the files instead. Silent files are scored like any other. Units: keys ending in `_percent` are percentages
(0..100); PSDS and F1 are fractions (0..1); medR and meanR are ranks.
"""
