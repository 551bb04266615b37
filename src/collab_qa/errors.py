"""Errors a user can cause. The CLI turns them into exit code 2, the web app into a 4xx."""


class UserError(Exception):
    """A problem the user can fix; its message is one sentence that says how."""


class QuestionError(UserError):
    """The question cannot be searched (empty, too long, bad parameters)."""


class IndexLoadError(UserError):
    """The index directory is missing, corrupt or does not match the settings."""


class BuildLockedError(UserError):
    """Another build holds the index lock."""


class DatabaseError(UserError):
    """The database URL is malformed, or the database cannot be reached."""


class DatabaseUnavailable(DatabaseError):
    """The database went away while serving; the web app answers 503 until it returns."""
