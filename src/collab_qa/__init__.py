"""collab-qa: question answering over an organisation's own documents, offline."""

__version__ = "0.1.0"
