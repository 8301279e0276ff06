"""Synthetic corpus: deterministic 10 s soundscapes with exact onsets/offsets in real dataset layouts.

Each clip is 10 s, 32 kHz, mono, PCM 16-bit: 1-4 events of distinct classes (0.5-4 s each, overlaps
allowed) over white-to-pink background noise, each at a random in-band SNR of 5-25 dB, peak-normalised
to -6..-1 dBFS. The 13 classes in EVENT_TYPES (hum, engine, knock, dog bark, siren, bell, beep, whistle,
sweep, bird chirp, clicking, rain, hiss) each own a disjoint frequency band (`band_hz`) within the
50-14000 Hz log-mel range and a temporal pattern of their own; pitch, length, loudness and timbre are
drawn per event. Captions name every event in onset order with attributes (short/long, loud/soft,
high/low pitched, rising/falling, ...) and temporal connectors ("followed by", "while there is",
"with ... in the background").

Layout written by `generate_corpus(out_dir, ...)` / `python -m data_handling.synthetic --out DIR`.
Paths inside metadata are relative to the metadata file's own folder; ESC-50 and SED/grounding tsv
files name files only, as the real datasets do. Labels replace spaces by '_' ("dog_bark").

    DIR/
      classes.json                   {"events": [{"name", "synonyms", "band_hz"}, ...]} sorted by name
      train/audio/train_00000.wav ...
      train/train.json               WavCaps: {"num_captions_per_audio": 1, "data": [{"id",
                                       "audio": "audio/train_00000.wav", "caption", "duration"}]}
      train/events.tsv               strong labels (filename, onset, offset, event_label) of the train clips
      retrieval/audio/test_00000.wav ...
      retrieval/test.json            Clotho/AudioCaps: {"num_captions_per_audio": 5, "data": [{"id", "audio",
                                       "caption_1", ..., "caption_5", "duration"}]}, 5 different captions
      retrieval/events.tsv           strong labels of the retrieval clips
      sed/audio/sed_00000.wav ...
      sed/metadata/eval.tsv          AudioSet-strong / DESED: filename, onset, offset, event_label
      sed/metadata/eval_durations.tsv  filename, duration
      grounding/audio/grd_00000.wav ...
      grounding/test.json            AudioGrounding: [{"audio_id": "grd_00000.wav", "audiocap_id", "tokens",
                                       "phrases": [{"phrase", "start_index", "end_index", "segments"}]}]
                                       (inclusive word indices into tokens.split(" "))
      grounding/durations.tsv        filename, duration
      grounding/events.tsv           strong labels of the grounding clips
      esc50/audio/{fold}-{clip_id}-A-{target}.wav   5 s single-event clips, num_esc_per_class per class
      esc50/meta/esc50.csv           filename,fold,target,category,esc10,src_file,take (target = index in
                                       the sorted class list, folds 1-5 assigned round robin)
      DONE                           json (seed, counts, classes); written last, see corpus_exists

Determinism: clip i of split s is drawn from SeedSequence([seed, split_id(s), i]), and files hold no
timestamps, so one seed gives byte-identical files whatever the number of worker processes.
"""

from data_handling.synthetic.captions import caption_for, distinct_captions, event_phrase
from data_handling.synthetic.corpus import corpus_exists, ensure_corpus, generate_corpus, generate_sed_split
from data_handling.synthetic.events import EVENT_TYPES, SAMPLE_RATE, EventType
from data_handling.synthetic.scenes import CLIP_SECONDS, ESC_CLIP_SECONDS, SoundEvent, render_scene

__all__ = [
    "CLIP_SECONDS",
    "ESC_CLIP_SECONDS",
    "EVENT_TYPES",
    "SAMPLE_RATE",
    "EventType",
    "SoundEvent",
    "caption_for",
    "corpus_exists",
    "distinct_captions",
    "ensure_corpus",
    "event_phrase",
    "generate_corpus",
    "generate_sed_split",
    "render_scene",
]
