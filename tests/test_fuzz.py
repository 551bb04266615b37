"""Fuzzing: schemathesis against the app's own OpenAPI schema on a loopback uvicorn server (no
5xx, status codes, content types and bodies as documented), with a bounded number of examples
per operation; hypothesis properties of the eval file parser."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from collab_qa.chunking import ChunkerConfig
from collab_qa.embedding import FakeEmbedder
from collab_qa.index import build_index
from collab_qa.settings import Settings
from tests.conftest import CORPUS, MakeAppClient

EXAMPLES_PER_OPERATION = 30


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory,
            make_app_client: MakeAppClient) -> Iterator[str]:
    root = tmp_path_factory.mktemp("fuzz")
    embedder = FakeEmbedder()
    build_index(CORPUS, root / "index", embedder, ChunkerConfig())
    app_settings = Settings(corpus_dir=CORPUS, index_dir=root / "index", data_dir=root / "data",
                            _env_file=None)
    with make_app_client(app_settings, embedder, server=True, limit_concurrency=20) as http:
        yield str(http.base_url).rstrip("/")


def test_api_conforms_to_its_schema(api_url: str) -> None:
    """Every operation, with valid (positive) and invalid (negative) data from the schema."""
    api_schema = schemathesis.openapi.from_url(api_url + "/openapi.json")
    results = list(api_schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), "the schema has invalid operations"
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert {"/api/ask", "/api/documents", "/readyz"} <= {op.path for op in operations}
    calls: list[int] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
                      database=None, suppress_health_check=list(HealthCheck))
            def fuzz(case: schemathesis.Case) -> None:
                response = case.call(base_url=api_url, timeout=30)
                calls.append(response.status_code)
                case.validate_response(response, checks=[
                    not_a_server_error, status_code_conformance, content_type_conformance,
                    response_schema_conformance,
                ])
                assert "Traceback" not in response.text

            try:
                fuzz()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to get wrong (no parameters)
    print(f"\nschemathesis: {len(calls)} requests over {len(operations)} operations, "
          f"statuses {dict(sorted(Counter(calls).items()))}")
    assert max(calls) < 500


# ---------------------------------------------------------------------------- eval parser

evaluate = pytest.importorskip("collab_qa.evaluate")

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@given(st.lists(st.text(max_size=200) | JSON_VALUES.map(json.dumps), max_size=8))
@settings(max_examples=300, deadline=None)
def test_eval_parser_accepts_or_refuses_with_a_sentence(lines: list[str]) -> None:
    """Any text, valid JSON or not: parsed questions, or the one error the CLI turns into a
    sentence naming the line; never another exception."""
    try:
        questions = evaluate.parse_questions(lines, source="fuzz.jsonl")
    except evaluate.EvalFileError as exc:
        assert "fuzz.jsonl" in str(exc)
        return
    assert all(question.question.strip() for question in questions)


ROWS = st.fixed_dictionaries(
    {"question": st.text(min_size=1, max_size=80).filter(str.strip),
     "answers": st.lists(st.fixed_dictionaries(
         {"doc": st.text(max_size=30), "contains": st.text(min_size=1, max_size=40).filter(
             str.strip)}), max_size=3)},
    optional={"history": st.lists(st.text(max_size=40), max_size=3),
              "split": st.sampled_from(["dev", "test"])},
)


@given(st.lists(ROWS, min_size=1, max_size=6), st.lists(st.booleans(), max_size=6))
@settings(max_examples=200, deadline=None)
def test_eval_parser_round_trips_valid_rows(rows: list[dict[str, object]],
                                            blanks: list[bool]) -> None:
    lines, numbers = [], []
    for i, row in enumerate(rows):
        if i < len(blanks) and blanks[i]:
            lines.append("   ")
        lines.append(json.dumps({"id": f"q{i}", **row}))
        numbers.append(len(lines))
    parsed = evaluate.parse_questions(lines, source="rows.jsonl")
    assert [q.id for q in parsed] == [f"q{i}" for i in range(len(rows))]
    assert [q.line for q in parsed] == numbers
    for question, row in zip(parsed, rows, strict=True):
        assert question.question == str(row["question"]).strip()
        assert [(a.doc, a.contains) for a in question.answers] == [
            (a["doc"], a["contains"]) for a in row["answers"]]  # type: ignore[attr-defined]
        assert list(question.history) == row.get("history", [])
        assert question.split == row.get("split")
        assert question.answerable == bool(row["answers"])
    duplicated = [*lines, lines[-1]]
    with pytest.raises(evaluate.EvalFileError, match="already used"):
        evaluate.parse_questions(duplicated, source="rows.jsonl")


def test_the_shipped_eval_file_parses() -> None:
    questions_file = Path(__file__).resolve().parent.parent / "eval" / "questions.jsonl"
    if not questions_file.is_file():
        pytest.skip("eval/questions.jsonl is not written yet")
    lines = questions_file.read_text(encoding="utf-8").splitlines()
    parsed = evaluate.parse_questions(lines, source=str(questions_file))
    assert len(parsed) == sum(1 for line in lines if line.strip())
