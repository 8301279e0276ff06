"""detect.py's scored outputs against the SED protocol and sed_scores_eval, on detections good enough that
PSDS is far from 0 (a tiny random model scores 0.0 everywhere, where any two computations agree)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import median_filter

import detect
from data_handling.audio_io import load_audio
from data_handling.eval_sets.sed import read_sed_tsv
from models.windowing import prepare_waveform
from tests.test_detect import BandEnergyOracle
from tools.eval.sed import evaluate_sed
from tools.eval.sed_metrics import merge_same_class_events
from tools.tiny_model import tiny_config_dict

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*pkg_resources.*")
    from sed_scores_eval import collar_based, intersection_based, segment_based
    from sed_scores_eval.base_modules.io import read_sed_scores


class PooledOracle(BandEnergyOracle):
    """BandEnergyOracle with a clip embedding (the mean of its frames), which the protocols' batched embedding
    computes alongside the frames; SED scores only the frames."""

    def pool_frames(self, frame_embeds):
        return frame_embeds.mean(dim=1)


@pytest.fixture(scope="module")
def oracle(tiny_text_dir) -> BandEnergyOracle:
    return PooledOracle(tiny_config_dict(tiny_text_dir)).eval()


def test_detect_psds_equals_the_protocol_and_sed_scores_eval_well_above_zero(oracle, synthetic_corpus, tmp_path,
                                                                            monkeypatch):
    """The synthetic SED split scored with the band-energy oracle (tests/test_detect.py) as the model: detect.py's
    --ground-truth scores = evaluate_sed's = sed_scores_eval called directly on the written score files,
    with PSDS1 and PSDS2 well above 0."""
    sed = synthetic_corpus / "sed"
    audio, tsv, durations_tsv = sed / "audio", sed / "metadata" / "eval.tsv", sed / "metadata" / "eval_durations.tsv"
    monkeypatch.setattr(detect, "load_script_model", lambda args, config: (oracle, "cpu"))
    out = tmp_path / "out"
    summary = detect.main(["--ckpt", str(tmp_path / "unused.pt"), "--device", "cpu", "--num-workers", "0",
                           str(audio), "--classes-from", str(tsv), "--out-dir", str(out),
                           "--ground-truth", str(tsv)])
    scores = summary["scores"]
    assert scores["psds1"] > 0.3 and scores["psds2"] > 0.3 and scores["collar_f1"] > 0.3, scores

    protocol = evaluate_sed(oracle, audio, tsv, durations_tsv, "cpu", num_workers=0)
    for key in ("psds1", "psds2", "collar_f1", "segment_f1"):
        assert scores[key] == pytest.approx(protocol[key], abs=1e-6), key

    written = read_sed_scores(out / "scores")
    annotations = read_sed_tsv(tsv, durations_tsv)       # labels normalised as every protocol reads them
    assert set(written) == set(annotations.ground_truth)
    truth = {clip: merge_same_class_events(events) for clip, events in annotations.ground_truth.items()}
    durations = {clip: annotations.durations[clip] for clip in truth}
    direct = {
        "psds1": intersection_based.psds(written, truth, durations, dtc_threshold=0.7, gtc_threshold=0.7,
                                         cttc_threshold=None, alpha_ct=0.0, alpha_st=1.0, max_efpr=100.0)[0],
        "psds2": intersection_based.psds(written, truth, durations, dtc_threshold=0.1, gtc_threshold=0.1,
                                         cttc_threshold=0.3, alpha_ct=0.5, alpha_st=1.0, max_efpr=100.0)[0],
        "collar_f1": collar_based.best_fscore(written, truth, onset_collar=0.2, offset_collar=0.2,
                                              offset_collar_rate=0.2)[0]["macro_average"],
        "segment_f1": segment_based.best_fscore(written, truth, durations, segment_length=1.0)[0]["macro_average"],
    }
    for key, value in direct.items():
        assert scores[key] == pytest.approx(float(value), abs=1e-6), key

    # the written scores are the SED protocol's: frame cosines with the class embeddings, median filter of 3
    labels = annotations.class_names
    with torch.no_grad():
        queries = F.normalize(oracle.embed_text(labels), dim=-1).numpy()                        # [C, E]
        for clip, table in written.items():
            waveform = prepare_waveform(torch.from_numpy(load_audio(audio / f"{clip}.wav", 32000)), 32000, "tile")
            frames = F.normalize(oracle.encode_audio(waveform[None])[1][0], dim=-1).numpy()     # [32, E]
            expected = median_filter(frames @ queries.T, size=(3, 1), mode="nearest")
            np.testing.assert_allclose(table[labels].to_numpy(), expected, atol=1e-5, err_msg=clip)
