"""The ``collab-qa`` command: parse flags, call the library, print. Nothing else.

One module a command (group); the commands are registered here, in the order ``--help``
lists them.
"""

import typer

from collab_qa.cli import ask, calibrate, evaluate, feedback, index, serve

app = typer.Typer(
    name="collab-qa",
    help="Ask questions of your organisation's documents; answers cite their sources.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("index")(index.index_command)
app.command("ask")(ask.ask)
app.command("serve")(serve.serve)
app.add_typer(feedback.feedback_app, name="feedback")
app.command("eval")(evaluate.eval_command)
app.command("calibrate")(calibrate.calibrate_command)

__all__ = ["app"]
