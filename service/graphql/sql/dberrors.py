"""Database errors as Hasura reports them, with the same wording on both backends.

PostgreSQL's error class (SQLSTATE) picks the code: integrity violations are
`constraint-violation` with Hasura's prefix ("Uniqueness violation. duplicate key value
violates unique constraint \"invocations_pkey\""), data errors `data-exception`.
SQLite's messages are rewritten into PostgreSQL's wording, naming the constraint where
the catalog can tell which one it is. A statement cut by the database's time limit
(PostgreSQL's `statement_timeout`, SQLite's progress handler; see
`service.storage.database`) is `timeout`, saying so. Anything else is `unexpected` and
logged; its text never reaches the client.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from sqlalchemy import exc as sa_exc

from service.graphql.catalog.metadata import Catalog
from service.graphql.errors import (
    CONSTRAINT_VIOLATION,
    DATA_EXCEPTION,
    TIMEOUT,
    UNEXPECTED,
    EngineError,
)

logger = logging.getLogger(__name__)

_PREFIX = {
    "23505": "Uniqueness violation",
    "23503": "Foreign key violation",
    "23514": "Check constraint violation",
    "23502": "Not-NULL violation",
    "23P01": "Exclusion violation",
}


QUERY_CANCELED = "57014"

STATEMENT_TIMEOUT_MESSAGE = (
    "the query was cancelled: one of its statements ran longer than the server's "
    "statement time limit (its statement_timeout setting); narrow it with 'where' or "
    "'limit', or ask for fewer rows"
)


def translate(error: sa_exc.DBAPIError, catalog: Catalog, path: str = "$") -> EngineError:
    """The `EngineError` a client sees for a failed statement."""
    original = error.orig
    sqlstate = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if sqlstate is None:
        cause = getattr(original, "__cause__", None)
        sqlstate = getattr(cause, "sqlstate", None)
    message = _first_line(
        str(getattr(original, "args", [""])[0] if getattr(original, "args", None) else original)
    )
    if sqlstate:
        return _postgres(sqlstate, message, path)
    return _sqlite(error, message, catalog, path)


def _first_line(text: str) -> str:
    text = re.sub(r"^<class '[^']+'>: ", "", text.strip())
    return text.splitlines()[0] if text else "database error"


def _postgres(sqlstate: str, message: str, path: str) -> EngineError:
    if sqlstate == QUERY_CANCELED:
        return EngineError(TIMEOUT, STATEMENT_TIMEOUT_MESSAGE, path)
    if sqlstate in _PREFIX:
        return EngineError(CONSTRAINT_VIOLATION, f"{_PREFIX[sqlstate]}. {message}", path)
    if sqlstate.startswith("23"):
        return EngineError(CONSTRAINT_VIOLATION, f"Integrity violation. {message}", path)
    if sqlstate.startswith("22"):
        return EngineError(DATA_EXCEPTION, message, path)
    logger.error("database error %s: %s", sqlstate, message)
    return EngineError(UNEXPECTED, "database query error", path)


def _sqlite(error: sa_exc.DBAPIError, message: str, catalog: Catalog, path: str) -> EngineError:
    if isinstance(error, sa_exc.IntegrityError):
        match = re.match(r"UNIQUE constraint failed: (.+)", message)
        if match:
            name = _unique_name(catalog, match.group(1))
            return EngineError(
                CONSTRAINT_VIOLATION,
                f'Uniqueness violation. duplicate key value violates unique constraint "{name}"',
                path,
            )
        match = re.match(r"NOT NULL constraint failed: (\w+)\.(\w+)", message)
        if match:
            table, column = match.groups()
            return EngineError(
                CONSTRAINT_VIOLATION,
                f'Not-NULL violation. null value in column "{column}" of relation "{table}" '
                "violates not-null constraint",
                path,
            )
        match = re.match(r"CHECK constraint failed: (\w+)", message)
        if match:
            return EngineError(
                CONSTRAINT_VIOLATION,
                f'Check constraint violation. new row violates check constraint "{match.group(1)}"',
                path,
            )
        if "FOREIGN KEY" in message:
            return EngineError(
                CONSTRAINT_VIOLATION,
                "Foreign key violation. insert or update violates a foreign key constraint",
                path,
            )
        return EngineError(CONSTRAINT_VIOLATION, f"Integrity violation. {message}", path)
    if message == "interrupted":
        return EngineError(TIMEOUT, STATEMENT_TIMEOUT_MESSAGE, path)
    if "user-defined function raised exception" in message or isinstance(error, sa_exc.DataError):
        return EngineError(DATA_EXCEPTION, _function_error(error) or message, path)
    logger.error("database error: %s", message)
    return EngineError(UNEXPECTED, "database query error", path)


def _function_error(error: Any) -> str | None:
    # Python exceptions raised inside registered functions are chained on the error.
    cause = error.orig.__cause__ or error.orig.__context__
    return str(cause) if cause is not None else None


def _unique_name(catalog: Catalog, columns_text: str) -> str:
    qualified = [part.strip() for part in columns_text.split(",")]
    table_name = qualified[0].split(".")[0]
    columns = tuple(part.split(".", 1)[1] for part in qualified)
    table = catalog.tables.get(table_name)
    if table is not None:
        for name, constraint_columns in table.unique_constraints.items():
            if set(constraint_columns) == set(columns):
                return name
    return f"{table_name}_{'_'.join(columns)}_key"
