"""The quality gate: the eval's blind splits with the real model must stay at the figures
reached (thresholds sit just under them, see eval/README.md), plus the `collab-qa eval`
command's errors, thresholds and reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from collab_qa.beir import load_beir, open_beir_index, rank_documents, run_beir
from collab_qa.chunking import ChunkerConfig
from collab_qa.cli import app
from collab_qa.embedding import FakeEmbedder
from collab_qa.evaluate import EvalReport, load_questions, run_eval
from collab_qa.search import Searcher

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "eval" / "questions.jsonl"

# Just under what each blind split measured when it was scored, once, after its round's rules
# were fixed (eval/README.md, "Sixth round" to "Eighth round"), with the default model (e5).
# blind, sixth round: hybrid 0.838 / 0.892 / 0.868 / 0.676 Evidence@1 / 0.769 unanswerable
# abstained; lexical 0.757 / 0.797; dense 0.757 / 0.803 (37 answerable and 13 unanswerable
# questions: one question is 0.027 or 0.077). It measured 0.838 / 0.946 / 0.890 / 0.703 /
# 0.692, answerable abstained 0.027, at the end of the seventh round.
# blind2, seventh round: hybrid 0.882 / 1.000 / 0.917 / 0.676 / 0.375, answerable
# abstained 0.088; lexical 0.765 / 0.816 (0.088); dense 0.765 / 0.814 (0.118); 34 answerable
# and 8 unanswerable: one question is 0.029 or 0.125.
# blind3, eighth round: hybrid 0.875 / 0.938 / 0.914 / 0.688 / 0.625, answerable abstained 0;
# lexical 0.750 / 0.826; dense 0.719 / 0.807; 32 answerable and 8 unanswerable: one question
# is 0.031 or 0.125. Evidence@1 rose to 0.750 with a sentence-splitting fix found in its
# misses afterwards (so that figure is no longer blind).
GATES = {
    "blind": ({
        "hybrid": {"hit@1": 0.81, "recall@5": 0.86, "mrr@10": 0.84, "evidence@1": 0.65,
                   "unanswerable_abstained": 0.69},
        "lexical": {"hit@1": 0.73, "mrr@10": 0.77},
        "dense": {"hit@1": 0.73, "mrr@10": 0.78},
    }, 0.03),
    "blind2": ({
        "hybrid": {"hit@1": 0.85, "recall@5": 0.97, "mrr@10": 0.89, "evidence@1": 0.64,
                   "unanswerable_abstained": 0.37},
        "lexical": {"hit@1": 0.73, "mrr@10": 0.79},
        "dense": {"hit@1": 0.73, "mrr@10": 0.79},
    }, 0.12),
    "blind3": ({
        "hybrid": {"hit@1": 0.84, "recall@5": 0.90, "mrr@10": 0.89, "evidence@1": 0.71,
                   "unanswerable_abstained": 0.62},
        "lexical": {"hit@1": 0.71, "mrr@10": 0.80},
        "dense": {"hit@1": 0.68, "mrr@10": 0.78},
    }, 0.04),
}


@pytest.fixture(scope="module")
def blind_reports(real_searcher: Searcher) -> dict[str, EvalReport]:
    return {split: run_eval(real_searcher, load_questions(
        QUESTIONS, real_searcher.index.documents, split=split), list(gate), k=10,
        source=f"{split} split", split=split) for split, (gate, _) in GATES.items()}


@pytest.mark.slow
@pytest.mark.parametrize(("split", "mode"), [(split, mode) for split, (gate, _) in GATES.items()
                                             for mode in gate])
def test_quality_gate_on_the_blind_splits(blind_reports: dict[str, EvalReport], split: str,
                                          mode: str) -> None:
    gate, most_abstained = GATES[split]
    result = next(m for m in blind_reports[split].modes if m.mode == mode)
    metrics = result.metrics
    print(f"\n{split} {mode}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()
                                            if v is not None))
    failed = [f"{r.id} {r.question}" for r in result.failures]
    for name, floor in gate[mode].items():
        value = metrics[name]
        assert value is not None and value >= floor, (
            f"{split} {mode} {name} = {value} fell under {floor}; failed questions: {failed}")
    assert (metrics["answerable_abstained"] or 0.0) <= most_abstained, failed


@pytest.fixture(scope="module")
def cli_env(corpus_index_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data = tmp_path_factory.mktemp("data")
    return {"COLLAB_QA_INDEX_DIR": str(corpus_index_dir), "COLLAB_QA_DATA_DIR": str(data)}


@pytest.mark.slow
def test_cli_eval_reports_and_fails_under(cli_env: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    report = tmp_path / "report"
    result = runner.invoke(app, ["eval", str(QUESTIONS), "--mode", "lexical", "--split", "dev",
                                 "--report", str(report), "--fail-under", "hit@1=0.5"],
                           env=cli_env)
    assert result.exit_code == 0, result.output
    assert "Hit@1" in result.output and "lexical" in result.output
    assert {"report.json", "report.md", "report.html", "metrics.png", "latency.png"} <= {
        p.name for p in report.iterdir()}
    data = json.loads((report / "report.json").read_text(encoding="utf-8"))
    assert data["split"] == "dev" and data["modes"][0]["mode"] == "lexical"
    assert "<img" in (report / "report.html").read_text(encoding="utf-8")
    strict = runner.invoke(app, ["eval", str(QUESTIONS), "--mode", "lexical", "--split", "dev",
                                 "--fail-under", "hit@1=0.999"], env=cli_env)
    assert strict.exit_code == 1 and "Below threshold" in strict.output


@pytest.mark.slow
def test_cli_eval_errors_are_one_sentence(cli_env: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok?", "answers": []}\n{"question": oops}\n', encoding="utf-8")
    result = runner.invoke(app, ["eval", str(bad), "--mode", "lexical"], env=cli_env)
    assert result.exit_code == 2 and "line 2" in result.output
    assert "Traceback" not in result.output
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text(json.dumps({"question": "q?", "answers": [
        {"doc": "nowhere.txt", "contains": "x"}]}) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["eval", str(unknown), "--mode", "lexical"], env=cli_env)
    assert result.exit_code == 2 and "nowhere.txt" in result.output
    for args, message in ((["--mode", "fuzzy"], "Unknown mode"),
                          (["--fail-under", "speed=1"], "Unknown metric"),
                          (["--split", "train"], "Unknown split")):
        result = runner.invoke(app, ["eval", str(QUESTIONS), *args], env=cli_env)
        assert result.exit_code == 2 and message in result.output, result.output


# ---------------------------------------------------------------------------- BEIR layout


def write_beir(folder: Path) -> None:
    folder.mkdir()
    docs = [("d1", "Vitamin D", "Vitamin D deficiency is linked to bone fractures."),
            ("d2", "Aspirin", "Aspirin lowers the risk of heart attack in adults."),
            ("d3", "Sleep", "Short sleep is associated with obesity in children.")]
    (folder / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": i, "title": t, "text": x, "metadata": {}}) + "\n"
        for i, t, x in docs), encoding="utf-8")
    (folder / "queries.jsonl").write_text("".join(
        json.dumps({"_id": q, "text": x, "metadata": {"d1": "never read"}}) + "\n"
        for q, x in (("1", "aspirin heart attack"), ("2", "sleep obesity children"),
                     ("3", "no qrels for this one"))), encoding="utf-8")
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_bytes(
        b"query-id\tcorpus-id\tscore\r\n1\td2\t1\r\n2\td3\t1\r\n")


def test_beir_layout_cache_and_metrics(tmp_path: Path) -> None:
    write_beir(tmp_path / "tiny")
    dataset = load_beir(tmp_path / "tiny")
    assert dataset.qrels == {"1": {"d2": 1}, "2": {"d3": 1}}
    assert list(dataset.queries) == ["1", "2"]
    builds: list[Path] = []
    embedder = FakeEmbedder()
    index = open_beir_index(dataset, embedder, tmp_path / "data", ChunkerConfig(),
                            on_build=builds.append)
    again = open_beir_index(dataset, embedder, tmp_path / "data", ChunkerConfig(),
                            on_build=builds.append)
    assert len(builds) == 1 and builds[0].parent == tmp_path / "data" / "beir"
    assert builds[0].name.startswith("tiny-") and len(again.chunks) == len(index.chunks)
    searcher = Searcher(index, embedder, max_k=1000)
    assert rank_documents(searcher, "aspirin heart attack", "lexical")[0] == "d2"
    results = run_beir(searcher, dataset, ["lexical", "hybrid"])
    assert results[0].mean("ndcg@10") == 1.0 and results[0].mean("recall@100") == 1.0


def test_beir_missing_files_are_named(tmp_path: Path) -> None:
    from collab_qa.errors import UserError

    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"corpus\.jsonl"):
        load_beir(tmp_path / "empty")
