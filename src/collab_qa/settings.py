"""All settings in one place. Every field can be set with an environment variable
``COLLAB_QA_<FIELD>`` (upper case) or in a ``.env`` file; the README lists them all."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SearchMode = Literal["hybrid", "dense", "lexical"]


class Settings(BaseSettings):
    """collab-qa settings; the env prefix is ``COLLAB_QA_``."""

    model_config = SettingsConfigDict(env_prefix="COLLAB_QA_", env_file=".env", extra="ignore")

    corpus_dir: Path = Field(Path("corpus"), description="Folder with the source documents.")
    index_dir: Path = Field(Path("index"), description="Folder the built index is written to.")
    database_url: str = Field(
        "", repr=False, description="A `postgresql://` URL: the index then lives in that "
        "Postgres database (with pgvector), shared by every server given the same URL, and no "
        "index folder is written or read; empty means the local index folder.",
    )
    database_vector_index: Literal["auto", "hnsw", "ivfflat"] = Field(
        "auto", description="The database's vector index (with `database_url`): `auto` "
        "builds pgvector's HNSW below 100,000 passages and IVFFlat from there (rebuilt beside "
        "the old one when the collection doubles); `hnsw` or `ivfflat` keeps to one kind.",
    )
    database_pool_size: int = Field(
        8, ge=1, le=200, description="Most connections each server keeps open to the database "
        "for searches, conversations and feedback (with `database_url`).",
    )
    data_dir: Path = Field(
        Path("data"), description="Folder for local data such as answer feedback."
    )
    model: str = Field(
        "",
        description=(
            "The embedding model: `minilm` (the bundled all-MiniLM-L6-v2, English), `e5` (the "
            "bundled multilingual-e5-small, 4-bit, Swedish and English, no torch) or the path "
            "of a local sentence-transformers model directory; empty means `e5`."
        ),
    )
    chunk_tokens: int = Field(
        200, ge=32, le=512, description="Largest chunk, in model wordpieces (before the prefix)."
    )
    chunk_overlap_tokens: int = Field(
        40, ge=0, le=200, description="Up to this many wordpieces of whole sentences are repeated "
        "at the start of the next chunk."
    )
    max_file_bytes: int = Field(
        20_000_000, ge=1, description="Files larger than this are skipped with a reason."
    )
    approximate_threshold: int = Field(
        50_000, ge=1, description="From this many chunks on, the dense index is approximate "
        "(IVF over 8-bit codes, candidates re-scored exactly), not exact; see bench/README.md."
    )
    default_k: int = Field(5, ge=1, le=50, description="Passages returned when k is not given.")
    max_k: int = Field(50, ge=1, le=1000, description="Largest k a request may ask for.")
    default_mode: SearchMode = Field("hybrid", description="Search mode when none is given.")
    dense_weight: float | None = Field(
        None, ge=0.0, le=1.0,
        description="Weight of the dense score in hybrid fusion (rest: BM25); empty: the "
                    "model's calibrated weight (0.85 for e5, 0.5 for MiniLM).",
    )
    sparse_terms: bool = Field(
        True, description="Also index the model's sparse \"latent terms\" as a "
        "third hybrid signal (e5 only: a second encoder pass per passage and per question; "
        "in the local folder and in Postgres); turning it on encodes only the sparse terms "
        "of kept passages.",
    )
    max_question_chars: int = Field(
        1000, ge=10, description="Longer questions are refused with a clear message."
    )
    build_lock_timeout: float = Field(
        30.0, ge=0.0, description="Seconds a build waits for another build to finish."
    )
    host: str = Field("127.0.0.1", description="Address `collab-qa serve` binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port `collab-qa serve` listens on.")
    admin_token: str = Field(
        "", repr=False, description="Token that allows rebuilding the index from a non-loopback "
        "client (header `Authorization: Bearer <token>`); empty means loopback only.",
    )
    trusted_hosts: str = Field(
        "localhost,127.0.0.1,::1", description="Comma-separated host names the server answers "
        "to (the Host header; `*.example.org` allows sub-domains, `*` any); others get 400. "
        "The `host` setting, when it is a specific address, is added.",
    )
    max_body_bytes: int = Field(
        262_144, ge=1024, description="Larger request bodies are refused with 413 before they "
        "are read.",
    )
    max_connections: int = Field(
        100, ge=1, description="Concurrent connections `collab-qa serve` accepts; more get 503.",
    )
    example_questions: list[str] = Field(
        default_factory=list, description="Questions the chat's first screen offers to ask "
        "(a JSON list); empty means one about each of the three largest documents, by title.",
    )
