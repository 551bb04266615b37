-- The index in Postgres. Applied by every build under the build lock; every statement is
-- idempotent. Rows of documents and chunks are shared by the versions that hold them, so a
-- build writes only what changed; a version is readable once its transaction commits and is
-- served once current_version names it.

CREATE EXTENSION IF NOT EXISTS vector;
CREATE SCHEMA IF NOT EXISTS collab_qa;

-- One embedded document: its text as indexed, under one model and chunker.
CREATE TABLE IF NOT EXISTS collab_qa.documents (
    content_id text PRIMARY KEY,
    doc_id text NOT NULL,
    title text NOT NULL,
    text text NOT NULL,
    sha256 text NOT NULL,
    format text NOT NULL
);

-- One passage. lexemes holds the analyser's tokens of the passage's embedding text, each
-- with as many positions as it occurs (positions count occurrences; they are not offsets).
-- token_count is the BM25 length. embedding has no fixed dimension; a partial HNSW index per
-- dimension (created by the build) serves the cosine search.
CREATE TABLE IF NOT EXISTS collab_qa.chunks (
    chunk_key bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    content_id text NOT NULL REFERENCES collab_qa.documents ON DELETE CASCADE,
    chunk_id text NOT NULL,
    ordinal integer NOT NULL,
    heading_path text[] NOT NULL,
    start_offset integer NOT NULL,
    end_offset integer NOT NULL,
    text text NOT NULL,
    lexemes tsvector NOT NULL,
    token_count integer NOT NULL,
    dimension integer NOT NULL,
    embedding vector NOT NULL,
    UNIQUE (content_id, ordinal)
);
CREATE INDEX IF NOT EXISTS chunks_lexemes ON collab_qa.chunks USING gin (lexemes);
-- The passage's sparse "latent terms" (pgvector 0.7 or later), NULL when the build kept none;
-- added here to tables made before them. Scored exactly, with no index (postgres_sparse.py).
ALTER TABLE collab_qa.chunks ADD COLUMN IF NOT EXISTS sparse sparsevec;

-- One build. manifest holds the same facts as the local folder's manifest.json (json, not
-- jsonb, to keep the documents in corpus order).
CREATE TABLE IF NOT EXISTS collab_qa.versions (
    version_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL UNIQUE,
    created timestamptz NOT NULL DEFAULT now(),
    model_id text NOT NULL,
    dimension integer NOT NULL,
    chunk_count integer NOT NULL,
    average_length double precision NOT NULL DEFAULT 1,
    manifest json NOT NULL
);

CREATE TABLE IF NOT EXISTS collab_qa.version_documents (
    version_id bigint NOT NULL REFERENCES collab_qa.versions ON DELETE CASCADE,
    doc_id text NOT NULL,
    content_id text NOT NULL REFERENCES collab_qa.documents,
    rank integer NOT NULL,
    PRIMARY KEY (version_id, doc_id)
);
CREATE INDEX IF NOT EXISTS version_documents_content
    ON collab_qa.version_documents (content_id);

-- The passages of a version by position: positions number them from 0, in the order the
-- local folder keeps them (documents in corpus order, passages in document order).
CREATE TABLE IF NOT EXISTS collab_qa.version_chunks (
    version_id bigint NOT NULL REFERENCES collab_qa.versions ON DELETE CASCADE,
    position integer NOT NULL,
    chunk_key bigint NOT NULL REFERENCES collab_qa.chunks,
    PRIMARY KEY (version_id, position)
);
CREATE INDEX IF NOT EXISTS version_chunks_by_chunk
    ON collab_qa.version_chunks (chunk_key, version_id);

-- BM25 document frequencies of a version: how many of its passages hold each token.
CREATE TABLE IF NOT EXISTS collab_qa.version_terms (
    version_id bigint NOT NULL REFERENCES collab_qa.versions ON DELETE CASCADE,
    term text NOT NULL,
    df integer NOT NULL,
    PRIMARY KEY (version_id, term)
);

-- Impact-ordered postings of a version: each token's passages with their BM25 contribution
-- (idf times the term-frequency part, exact for the version's statistics), in descending
-- order, cut into blocks of POSTING_BLOCK; block 0 holds the highest contributions. A lexical
-- search reads the first blocks of its tokens and stops once no unread passage can enter the
-- top k.
CREATE TABLE IF NOT EXISTS collab_qa.version_postings (
    version_id bigint NOT NULL REFERENCES collab_qa.versions ON DELETE CASCADE,
    term text NOT NULL,
    block integer NOT NULL,
    positions integer[] NOT NULL,
    contributions real[] NOT NULL,
    PRIMARY KEY (version_id, term, block)
);

-- The served version: one row, switched in the build's transaction.
CREATE TABLE IF NOT EXISTS collab_qa.current_version (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version_id bigint NOT NULL REFERENCES collab_qa.versions
);
