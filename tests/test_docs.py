"""The README documents every setting and every CLI command."""

from __future__ import annotations

from pathlib import Path

import typer.main

from collab_qa.cli import app
from collab_qa.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme() -> None:
    missing = [f"COLLAB_QA_{name.upper()}" for name in Settings.model_fields
               if f"COLLAB_QA_{name.upper()}" not in README]
    assert not missing, f"settings missing from README.md: {missing}"


def test_every_setting_has_a_description() -> None:
    assert all(field.description for field in Settings.model_fields.values())


def test_every_cli_command_is_in_the_readme() -> None:
    group = typer.main.get_group(app)
    commands = []
    for name, command in group.commands.items():
        sub = getattr(command, "commands", None)
        commands += [f"collab-qa {name} {s}" for s in sub] if sub else [f"collab-qa {name}"]
    missing = [c for c in commands if c not in README]
    assert not missing, f"commands missing from README.md: {missing}"
