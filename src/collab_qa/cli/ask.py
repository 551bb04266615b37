"""``collab-qa ask``: one question answered in the terminal."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from collab_qa.cli.common import console, load_settings, open_any_searcher, user_errors


def ask(
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    k: Annotated[int | None, typer.Option("-k", "--k", help="Passages to show.")] = None,
    mode: Annotated[str | None, typer.Option(help="hybrid, dense or lexical.")] = None,
    history: Annotated[list[str] | None, typer.Option(
        "--after", help="An earlier question this one follows up on (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")] = False,
) -> None:
    """Answer a question: the best sentence, contacts and the ranked passages with citations."""
    from collab_qa.answer import answer_question
    from collab_qa.embedding import load_embedder
    from collab_qa.web.views import answer_payload

    settings = load_settings()
    with user_errors():
        searcher = open_any_searcher(settings, load_embedder)
        answer = answer_question(searcher, question, k=k or settings.default_k,
                                 mode=mode or settings.default_mode, history=history or ())
    if as_json:
        payload = answer_payload(answer, searcher.index.version)
        console.print_json(json.dumps(payload.model_dump(mode="json"), ensure_ascii=False))
        return
    if answer.abstained:
        console.print("[bold]The documents don't answer this.[/]"
                      + (" Possibly related:" if answer.hits else ""))
    elif answer.best_sentence:
        console.print(f"[bold]{escape(answer.best_sentence)}[/]", highlight=False)
        console.print(f"[dim]— {escape(answer.hits[0].citation)}[/]\n", highlight=False)
    for contact in answer.contacts:
        details = ", ".join(part for part in (contact.name, contact.role, contact.email,
                                              contact.phone) if part)
        console.print(f"Contact: {escape(details)}  [dim]({escape(contact.citation)})[/]",
                      highlight=False)
    for conflict in answer.conflicts:
        console.print(f"[yellow]Sources disagree:[/] {escape(conflict.note or conflict.topic)}",
                      highlight=False)
        for citation, sentence in conflict.statements:
            console.print(f"  - {escape(sentence)}  [dim]({escape(citation)})[/]",
                          highlight=False)
    if answer.contacts or answer.conflicts:
        console.print()
    for rank, hit in enumerate(answer.hits, 1):
        console.print(f"[bold]{rank}. {escape(hit.citation)}[/]  [dim]{hit.score:.3f}[/]",
                      highlight=False)
        console.print(f"   {hit.text}\n", highlight=False, markup=False)
