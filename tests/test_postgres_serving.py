"""Serving from Postgres, against real throwaway servers (pgserver): a rebuild reaches another
app within 2 s, two uvicorn servers share conversations and feedback, a database restart
gives 503 and then recovers by itself, and 50 clients across 2 servers see no failure while
the index is rebuilt three times."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from collab_qa.chunking import ChunkerConfig
from collab_qa.cli import app as cli
from collab_qa.embedding import FakeEmbedder
from collab_qa.index import build_into
from collab_qa.settings import Settings
from collab_qa.store.postgres import Database, PostgresStore
from collab_qa.store.postgres_build import PostgresBackend
from collab_qa.web.conversations import ConversationStore, new_turn
from collab_qa.web.conversations_pg import (
    PostgresConversations,
    PostgresFeedback,
    create_chat_tables,
)
from collab_qa.web.schema import AskResponse
from tests.conftest import MakeAppClient

CHAT = {"X-Collab-QA-Chat": "1"}
ZEBRAFISH = "# Zebrafish\n\nThe zebrafish facility answers questions about fish.\n"


def settings_for(url: str, corpus: Path, tmp_path: Path) -> Settings:
    return Settings(database_url=url, corpus_dir=corpus, index_dir=tmp_path / "no-index",
                    data_dir=tmp_path / "no-data")


def built(url: str, corpus: Path) -> str:
    return build_into(PostgresBackend(Database.connect(url)), corpus, FakeEmbedder(),
                      ChunkerConfig()).version


def wait_for(check: Any, seconds: float, step: float = 0.05) -> float:
    """Seconds until ``check()`` is true; fails the test after ``seconds``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        time.sleep(step)
    return time.monotonic() - started


def test_serve_refuses_a_bad_or_unreachable_database_with_one_sentence(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("uvicorn.run", lambda app, **kwargs: pytest.fail("must not serve"))
    for url in ("mysql://somewhere/db", "postgresql://someone:secret@127.0.0.1:1/nothing"):
        result = CliRunner().invoke(cli, ["serve"], env={
            "COLLAB_QA_DATABASE_URL": url, "COLLAB_QA_INDEX_DIR": str(tmp_path / "index")})
        assert result.exit_code == 2, result.output
        assert "COLLAB_QA_DATABASE_URL" in result.output and "secret" not in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "index").exists()


def test_conversations_in_the_database_keep_recent_turns_and_ratings(
        database_url: str) -> None:
    database = Database.connect(database_url)
    create_chat_tables(database)
    create_chat_tables(database)  # a second server starting
    store: ConversationStore = PostgresConversations(database, max_turns=2)
    answer = AskResponse(question="q", abstained=True, best_sentence=None, contacts=[],
                         passages=[], conflicts=[], index_version="v1", took_ms=1.0)
    turns = [new_turn(f" question {n} ", [f"before {n}"], answer) for n in range(3)]
    for turn in turns:
        store.add("a", turn)
    assert [t.question for t in store.turns("a")] == ["question 1", "question 2"]
    assert store.turns("a")[1] == turns[2]
    store.rate("a", turns[2].id, "up")
    assert store.find("a", turns[2].id).rating == "up"  # type: ignore[union-attr]
    assert store.find("b", turns[2].id) is None and store.turns(None) == []
    store.add("b", turns[0])
    store.clear("a")
    assert store.turns("a") == [] and len(store.turns("b")) == 1
    database.close()


def test_a_rebuild_reaches_a_second_app_within_two_seconds(
        make_app_client: MakeAppClient, tmp_corpus: Path, tmp_path: Path,
        database_url: str) -> None:
    first_version = built(database_url, tmp_corpus)
    settings = settings_for(database_url, tmp_corpus, tmp_path)
    with make_app_client(settings) as one, make_app_client(settings) as other:
        assert other.get("/readyz").json()["index_version"] == first_version
        (tmp_corpus / "zebrafish.md").write_text(ZEBRAFISH, encoding="utf-8")
        rebuilt = one.post("/api/reindex")
        assert rebuilt.status_code == 200, rebuilt.text
        version = rebuilt.json()["index_version"]
        assert version != first_version and rebuilt.json()["added"] == ["zebrafish.md"]
        seconds = wait_for(lambda: other.get("/readyz").json()["index_version"] == version, 2)
        print(f"\nthe other app served the rebuild after {seconds:.2f} s")
        answer = other.post("/api/ask", json={"question": "zebrafish facility", "k": 3})
        assert answer.json()["passages"][0]["doc_id"] == "zebrafish.md"
        # A build by the command line is followed as well.
        (tmp_corpus / "zebrafish.md").unlink()
        by_cli = built(database_url, tmp_corpus)
        for app in (one, other):
            wait_for(lambda app=app: app.get("/readyz").json()["index_version"] == by_cli, 2)
    assert not (tmp_path / "no-index").exists() and not (tmp_path / "no-data").exists()


def test_two_servers_share_one_database(make_app_client: MakeAppClient, tmp_corpus: Path,
                                        tmp_path: Path, database_url: str) -> None:
    built(database_url, tmp_corpus)
    settings = settings_for(database_url, tmp_corpus, tmp_path)
    with make_app_client(settings, server=True) as one, \
            make_app_client(settings, server=True) as other:
        assert one.base_url != other.base_url
        first = one.post("/", data={"question": "Who is the contact for the agreement?"},
                         headers=CHAT)
        assert first.status_code == 200, first.text
        other.cookies.set("collab_qa_conversation", first.cookies["collab_qa_conversation"])
        turn_id = first.headers["X-Collab-QA-Turn"]
        # The next request of the same user reaches the other server.
        page = other.get("/")
        assert "Who is the contact for the agreement?" in page.text
        follow_up = other.post("/", data={"question": "and their email?"}, headers=CHAT)
        assert follow_up.status_code == 200
        rated = other.post("/feedback", data={"turn_id": turn_id, "rating": "up"},
                           headers=CHAT)
        assert rated.status_code == 204, rated.text
        assert one.post("/api/feedback", json={
            "rating": "down", "question": "Where is Japan?", "index_version": "v"},
        ).status_code == 204
        back = one.get("/").text  # its cookie, from the first answer
        assert "and their email?" in back
    database = Database.connect(database_url)
    entries = list(PostgresFeedback(database).read())
    database.close()
    assert [(e.rating, e.question) for e in entries] == [
        ("up", "Who is the contact for the agreement?"), ("down", "Where is Japan?")]
    exported = CliRunner().invoke(cli, ["feedback", "export"],
                                  env={"COLLAB_QA_DATABASE_URL": database_url})
    assert exported.exit_code == 0 and "Who is the contact for the agreement?" in exported.output


@pytest.fixture
def own_postgres() -> Iterator[Any]:
    """A Postgres server of this test alone, to stop and start."""
    import pgserver

    try:
        server = pgserver.get_server(tempfile.mkdtemp(prefix="collab-qa-pg-own-"),
                                     cleanup_mode="delete")
    except Exception as exc:
        pytest.skip(f"pgserver could not start a Postgres server here: {exc}")
    yield server
    server.cleanup()


def stop_postgres(server: Any) -> None:
    """Stop the server's postgres (``server.ensure_postgres_running()`` starts it again)."""
    from pgserver import _commands

    _commands.pg_ctl(["-w", "-m", "fast", "stop"],  # type: ignore[attr-defined]
                     pgdata=server.pgdata, user=server.system_user, timeout=30)


def test_a_database_restart_gives_503_then_service_recovers(
        make_app_client: MakeAppClient, own_postgres: Any, tmp_corpus: Path,
        tmp_path: Path) -> None:
    url = own_postgres.get_uri()
    version = built(url, tmp_corpus)
    question = {"question": "Who is the contact for the agreement?", "k": 3}
    with make_app_client(settings_for(url, tmp_corpus, tmp_path)) as client:
        assert client.post("/api/ask", json=question).status_code == 200
        stop_postgres(own_postgres)
        down = client.post("/api/ask", json=question)
        assert down.status_code == 503, down.text
        assert "cannot be reached right now" in down.json()["detail"]
        assert "\n" not in down.json()["detail"]
        assert client.post("/", data={"question": "x"}, headers=CHAT).status_code == 503
        wait_for(lambda: client.get("/readyz").status_code == 503, 5)
        own_postgres.ensure_postgres_running()
        seconds = wait_for(lambda: client.post("/api/ask", json=question).status_code == 200,
                           30, step=0.5)
        print(f"\nservice came back {seconds:.1f} s after the database")
        wait_for(lambda: client.get("/readyz").status_code == 200, 5)
        assert client.get("/readyz").json()["index_version"] == version


@pytest.mark.slow
def test_fifty_clients_across_two_servers_during_three_rebuilds(
        make_app_client: MakeAppClient, tmp_corpus: Path, tmp_path: Path,
        database_url: str) -> None:
    built(database_url, tmp_corpus)
    settings = settings_for(database_url, tmp_corpus, tmp_path)
    failures: list[str] = []
    done = [0]
    stop = threading.Event()
    lock = threading.Lock()

    def client(base_url: str, number: int) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as http:
            for i in range(200):  # bounded in count, and by the stop event in time
                if stop.is_set():
                    return
                try:
                    response = http.post("/api/ask", json={
                        "question": f"contact for agreement {number} {i}", "k": 3})
                    ok = response.status_code == 200 and response.json()["passages"]
                    problem = None if ok else f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    problem = repr(exc)
                with lock:
                    done[0] += 1
                    if problem:
                        failures.append(problem)

    with make_app_client(settings, server=True) as one, \
            make_app_client(settings, server=True) as other:
        urls = [str(one.base_url), str(other.base_url)]
        threads = [threading.Thread(target=client, args=(urls[n % 2], n)) for n in range(50)]
        for thread in threads:
            thread.start()
        versions = []
        for n in range(3):
            time.sleep(1.0)
            (tmp_corpus / f"extra-{n}.md").write_text(f"# Extra {n}\n\nExtra notes {n}.\n",
                                                      encoding="utf-8")
            if n == 1:
                versions.append(built(database_url, tmp_corpus))  # the command line
            else:
                response = (one if n == 0 else other).post("/api/reindex", timeout=120)
                assert response.status_code == 200, response.text
                versions.append(response.json()["index_version"])
        time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        for http in (one, other):
            assert http.get("/readyz").json()["index_version"] == versions[-1]
    print(f"\n{done[0]} requests across 2 servers during 3 rebuilds, {len(failures)} failed")
    assert len(set(versions)) == 3
    assert done[0] >= 100 and failures == [], failures[:3]


def test_the_store_reports_a_lost_database_in_one_sentence(own_postgres: Any,
                                                           tmp_corpus: Path) -> None:
    from collab_qa.errors import DatabaseUnavailable

    url = own_postgres.get_uri()
    built(url, tmp_corpus)
    store = PostgresStore.load(Database.connect(url))
    assert store.lexical_search("agreement", 3)[0].size
    stop_postgres(own_postgres)
    with pytest.raises(DatabaseUnavailable, match="cannot be reached right now"):
        store.lexical_search("agreement", 3)
    own_postgres.ensure_postgres_running()
    assert wait_for(lambda: _searches(store), 30, step=0.5) >= 0
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)


def _searches(store: PostgresStore) -> bool:
    try:
        return bool(store.lexical_search("agreement", 3)[0].size)
    except Exception:
        return False
