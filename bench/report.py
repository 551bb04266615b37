"""bench/README.md from the JSON results (placeholder until all parts exist)."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"


def write_readme() -> Path:
    return README
