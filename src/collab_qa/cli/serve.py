"""``collab-qa serve``: the web chat and the JSON API, with the index built first when there
is none."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from collab_qa.cli.common import console, load_settings, user_errors
from collab_qa.errors import UserError
from collab_qa.settings import Settings

if TYPE_CHECKING:
    from collab_qa.embedding import Embedder
    from collab_qa.index import BuildReport

def check_port_free(host: str, port: int) -> None:
    """Raise UserError with a sentence when ``host:port`` cannot be listened on."""
    import socket

    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        raise UserError(
            f"Cannot listen on {host}:{port} ({exc.strerror or exc}); stop what uses it or "
            "pick another port with --port."
        ) from None


def _print_built(report: BuildReport) -> None:
    console.print(f"Index {report.version}: {report.chunks} chunks from "
                  f"{len(report.added)} documents in {report.seconds:.1f} s.", highlight=False)


def _prepare_database(settings: Settings,
                      load_embedder: Callable[[str], Embedder]) -> Embedder:
    """Before serving from the database: reach it (a bad URL or a database that is down
    fails here, before the model loads), and build the index when there is none; returns
    the loaded model."""
    from collab_qa.store.postgres import Database, PostgresStore
    from collab_qa.store.postgres_build import build_postgres_index_from_settings

    database = Database.connect(settings.database_url)
    embedder = load_embedder(settings.model)
    if database.current_version_id() is None:
        console.print(f"No index in the {database.describe()} yet; building it from "
                      f"{settings.corpus_dir}...", highlight=False)
        _print_built(build_postgres_index_from_settings(settings, embedder))
    PostgresStore.load(database, expected_model_id=embedder.model_id)
    return embedder


def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind [default: setting].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: setting].")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Re-index when corpus files change.")]
    = False,
) -> None:
    """Serve the web chat and the JSON API; builds the index first when there is none."""
    import logging

    import uvicorn

    from collab_qa.embedding import load_embedder
    from collab_qa.index import build_index_from_settings, current_version_dir, load_index
    from collab_qa.web.app import create_app, served_url

    settings = load_settings(host=host, port=port)
    with user_errors():
        if settings.database_url:
            embedder = _prepare_database(settings, load_embedder)
        else:
            embedder = load_embedder(settings.model)
            if current_version_dir(settings.index_dir) is None:
                console.print(f"No index in {settings.index_dir} yet; building it from "
                              f"{settings.corpus_dir}...", highlight=False)
                _print_built(build_index_from_settings(settings, embedder))
            # A check only (the app loads it again): no word statistics, no warning twice.
            load_index(settings.index_dir, expected_model_id=embedder.model_id,
                       term_stats=False)
        check_port_free(settings.host, settings.port)
    # The app logs index switches, failed reloads and --watch rebuilds; show them with uvicorn's.
    app_log = logging.getLogger("collab_qa")
    if not app_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        app_log.addHandler(handler)
        app_log.setLevel(logging.INFO)
    console.print(f"collab-qa is serving on [bold]{served_url(settings.host, settings.port)}[/]"
                  f"{' (re-indexing on corpus changes)' if watch else ''}; Ctrl+C stops it.",
                  highlight=False)
    # Bounded: at most max_connections at once (then 503), idle keep-alive closed after 15 s
    # (longer than clients' pools keep idle connections, httpx 5 s: with equal timeouts a
    # request sent just as the server closes fails), X-Forwarded-For trusted from a proxy on
    # this machine only, no Server header. uvicorn parses HTTP with httptools (a dependency)
    # where it is installed, in C, rather than with h11 in Python.
    uvicorn.run(create_app(settings, embedder=embedder, watch=watch), host=settings.host,
                port=settings.port, log_level="info", timeout_keep_alive=15,
                limit_concurrency=settings.max_connections, timeout_graceful_shutdown=10,
                proxy_headers=True, forwarded_allow_ips="127.0.0.1", server_header=False)
