"""Database URLs of an observability store: which backend, where, and how to show them.

`sqlite:///path.db` (relative), `sqlite:////abs/path.db`, `sqlite://` (in memory) and
`postgresql://user:pass@host:port/db` (also `postgres://`). Standard library only: the
plugin's writers use these without loading SQLAlchemy (whose URL parsing they follow).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite:")


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql:", "postgres:", "postgresql+asyncpg:"))


def check_url(url: str) -> None:
    """Raise `ValueError` naming the problem unless `url` is a supported database URL."""
    if not (is_sqlite(url) or is_postgres(url)):
        raise ValueError(
            f"unsupported database URL {redact_url(url)!r}: "
            "use sqlite:///path.db or postgresql://user:pass@host:port/db"
        )


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***`, for messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))
    except ValueError:
        return url.split("@")[-1]


def sqlite_path(url: str) -> str:
    """The file path of a `sqlite:///path` URL (`:memory:` for an in-memory database)."""
    rest = url.partition(":")[2]
    if rest.startswith("//"):
        rest = rest[2:]
    # What is left is "/path" (the host part is empty), or nothing for `sqlite://`.
    path = rest.partition("?")[0].removeprefix("/")
    return unquote(path) or ":memory:"
