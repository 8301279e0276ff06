"""paper_table.py: the report card's numbers on the synthetic corpus, the paper's column, absent and failing
datasets, a bad --data-root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import paper_table
from data_handling.synthetic.corpus import corpus_paths
from models.factory import model_from_checkpoint
from tools.eval.classification import evaluate_classification_dataset
from tools.eval.cli import run_script
from tools.eval.grounding import evaluate_grounding
from tools.eval.retrieval import evaluate_retrieval
from tools.eval.sed import evaluate_sed

PAPER_NAMES = ["ESC-50", "UrbanSound8K", "VGGSound", "AudioSet-strong", "DESED", "UrbanSED", "AudioGrounding",
               "AudioCaps", "Clotho"]


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint) -> Path:
    return tiny_checkpoint


@pytest.fixture(scope="module")
def report_card(checkpoint, synthetic_corpus) -> dict:
    """The report card's numbers computed without paper_table and without the report card's routing
    (tools.eval.report_card): each protocol's evaluate function on the corpus's files as the corpus lists them."""
    model = model_from_checkpoint(checkpoint, None, "cpu")
    paths = corpus_paths(synthetic_corpus)
    options = {"device": "cpu", "num_workers": 0}
    return {"retrieval": evaluate_retrieval(model, paths["retrieval_json"], **options),
            "classification": evaluate_classification_dataset(model, "esc50", Path(paths["esc50_csv"]).parents[1],
                                                              **options),
            "sed": evaluate_sed(model, paths["sed_audio"], paths["sed_tsv"], paths["sed_durations"], **options),
            "grounding": evaluate_grounding(model, paths["grounding_json"], paths["grounding_audio"],
                                            durations_file=paths["grounding_durations"], **options)}


def run_table(checkpoint: Path, data_root: Path, out: Path) -> dict:
    return paper_table.main(["--ckpt", str(checkpoint), "--data-root", str(data_root), "--device", "cpu",
                             "--num-workers", "0", "--out", str(out)])


@pytest.fixture(scope="module")
def synthetic_table(checkpoint, synthetic_corpus, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("table") / "results"
    return run_table(checkpoint, synthetic_corpus, out), out


def numbers(result: dict) -> dict[str, float]:
    return {key: value for key, value in result.items() if isinstance(value, float)}


@pytest.mark.slow
def test_synthetic_rows_are_the_report_cards_numbers(synthetic_table, report_card):
    table, out = synthetic_table
    for task, card in report_card.items():
        entry = table["datasets"][f"synthetic corpus: {task}"]
        assert entry["status"] == "ok"
        assert numbers(entry["result"]) == numbers(card), task
    synthetic_rows = [row for row in table["rows"] if row["synthetic"]]
    assert {(row["task"], row["key"]) for row in synthetic_rows} == {
        ("classification", "accuracy_percent"), ("sed", "psds1"), ("sed", "psds2"), ("grounding", "psds_0.5"),
        *(("retrieval", f"{direction}_R{k}_percent") for direction in ("t2a", "a2t") for k in (1, 5, 10))}
    for row in synthetic_rows:
        assert row["paper"] is None and row["ours"] == report_card[row["task"]][row["key"]]
    assert json.loads(Path(f"{out}.json").read_text())["rows"] == table["rows"]


def test_real_datasets_are_absent_with_where_they_were_looked_for(synthetic_table, synthetic_corpus):
    table, out = synthetic_table
    assert [name for name in table["datasets"] if not name.startswith("synthetic")] == PAPER_NAMES
    for name in PAPER_NAMES:
        assert table["datasets"][name]["status"] == "absent"
    looked_for = table["datasets"]["ESC-50"]["looked_for"]
    assert any(str(synthetic_corpus / "ESC-50-master" / "meta" / "esc50.csv") in place for place in looked_for)
    assert any(str(synthetic_corpus / "Clotho" / "json_files" / "test.json") in place
               for place in table["datasets"]["Clotho"]["looked_for"])
    real_rows = [row for row in table["rows"] if not row["synthetic"]]
    assert real_rows and all(row["status"] == "absent" and row["ours"] is None for row in real_rows)
    text = Path(f"{out}.md").read_text()
    assert "## Absent" in text and str(synthetic_corpus / "TAG" / "test" / "metadata" / "test.json") in text


def test_markdown_has_the_paper_column(synthetic_table):
    text = Path(f"{synthetic_table[1]}.md").read_text()
    assert "| task | dataset | metric | paper | ours |" in text
    for line in ("| classification | ESC-50 | accuracy (%) | 94.9 | absent |",
                 "| classification | VGGSound | accuracy (%) | 31.8 | absent |",
                 "| SED | AudioSet-strong | PSDS1 | 0.354 | absent |",
                 "| SED | UrbanSED | PSDS1 | 0.087 | absent |",
                 "| grounding | AudioGrounding | PSDS (dtc = gtc = 0.5) | 0.487 | absent |",
                 "| retrieval | Clotho | T2A R@1 (%) |  | absent |"):
        assert line in text
    assert "| synthetic corpus | accuracy (%), ESC-50 protocol | – |" in text


@pytest.mark.slow
def test_found_datasets_run_and_a_failing_one_does_not_stop_the_others(checkpoint, synthetic_corpus, report_card,
                                                                       tmp_path):
    """A parent folder in the reference's layout: ESC-50-master/ and AudioCaps/ (the synthetic splits), a DESED/
    whose tsv lists no event (an error)."""
    root = tmp_path / "datasets"
    root.mkdir()
    (root / "ESC-50-master").symlink_to(synthetic_corpus / "esc50", target_is_directory=True)
    (root / "AudioCaps").symlink_to(synthetic_corpus / "retrieval", target_is_directory=True)
    desed = root / "DESED"
    (desed / "audio").mkdir(parents=True)
    (desed / "metadata").mkdir()
    (desed / "metadata" / "eval.tsv").write_text("filename\tonset\toffset\tevent_label\n")
    (desed / "metadata" / "eval_durations.tsv").write_text("filename\tduration\n")
    table = run_table(checkpoint, root, tmp_path / "table.json")  # a .json suffix names the same pair

    datasets = table["datasets"]
    assert datasets["ESC-50"]["status"] == "ok" and datasets["AudioCaps"]["status"] == "ok"
    assert numbers(datasets["ESC-50"]["result"]) == numbers(report_card["classification"])
    assert numbers(datasets["AudioCaps"]["result"]) == numbers(report_card["retrieval"])
    assert datasets["DESED"]["status"] == "error" and "no clip with an event" in datasets["DESED"]["error"]
    assert datasets["synthetic corpus"]["status"] == "absent"
    assert {name for name, entry in datasets.items() if entry["status"] == "absent"} == \
        set(PAPER_NAMES) - {"ESC-50", "AudioCaps", "DESED"} | {"synthetic corpus"}
    text = (tmp_path / "table.md").read_text()
    assert "| SED | DESED | PSDS1 | 0.264 | error |" in text and "## Errors" in text
    assert f"| classification | ESC-50 | accuracy (%) | 94.9 | {report_card['classification']['accuracy_percent']:.1f} |" in text


@pytest.mark.parametrize("make_root", [lambda tmp: tmp / "no_such_folder", lambda tmp: tmp], ids=["missing", "empty"])
def test_bad_data_root_is_a_one_line_error(make_root, checkpoint, tmp_path, capsys):
    out = tmp_path / "out" / "results"
    code = run_script(paper_table.main, ["--ckpt", str(checkpoint), "--data-root", str(make_root(tmp_path)),
                                         "--device", "cpu", "--out", str(out)])
    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith("error: ") and error.count("\n") == 1 and "--data-root" in error
    assert not out.parent.exists()
