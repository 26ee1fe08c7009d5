"""Computed fields as SQL expressions that give the same values on both backends.

Hasura backs a computed field with a SQL function taking the table row. The metadata in
`hasura/` names those functions (`invocation_success_rate`, ...); here each name maps to
a SQLAlchemy expression over the row's alias, so the engine filters, orders and selects
computed fields in SQL on PostgreSQL and SQLite alike, without depending on the
functions existing in the database.

The expressions are those of the SQL functions in `schema.sql` (rates rounded to two
decimals, 100 when nothing ran; the average job duration unrounded, 0 when no job ran);
`tests/test_graphql_computed.py` checks them against the functions on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from detector.observability import models

ExpressionBuilder = Callable[[FromClause], ColumnElement[Any]]


@dataclass(frozen=True)
class ComputedFunction:
    """A SQL function Hasura would call for a computed field, as an expression builder.

    `reads` names the tables the expression reads besides the row's own table, so
    live queries know what to watch.
    """

    name: str
    table: str
    scalar: str
    build: ExpressionBuilder
    reads: tuple[str, ...] = ()


def _rate(done: ColumnElement[Any], total: ColumnElement[Any]) -> ColumnElement[Any]:
    """100 when nothing ran, else done/total as a percentage with two decimals."""
    rate = sa.case(
        (total == 0, sa.literal(100, sa.Numeric())),
        else_=sa.func.round(done * sa.literal(100.0, sa.Numeric()) / total, 2),
    )
    return sa.type_coerce(rate, sa.Numeric())


def _invocation_success_rate(row: FromClause) -> ColumnElement[Any]:
    return _rate(row.c.total_jobs_succeeded, row.c.total_jobs_run)


def _event_job_success_rate(row: FromClause) -> ColumnElement[Any]:
    return _rate(row.c.jobs_succeeded, row.c.jobs_count)


_JOBS = models.JobExecution.__table__.alias("avg_job_duration_jobs")  # type: ignore[attr-defined]


def _invocation_avg_job_duration(row: FromClause) -> ColumnElement[Any]:
    jobs = _JOBS
    average = (
        sa.select(sa.func.avg(jobs.c.duration_ms))
        .where(jobs.c.invocation_id == row.c.id)
        .scalar_subquery()
    )
    return sa.cast(sa.func.coalesce(average, 0), sa.Numeric())


FUNCTIONS: dict[str, ComputedFunction] = {
    function.name: function
    for function in (
        ComputedFunction(
            "invocation_success_rate", "invocations", "numeric", _invocation_success_rate
        ),
        ComputedFunction(
            "invocation_avg_job_duration",
            "invocations",
            "numeric",
            _invocation_avg_job_duration,
            reads=("job_executions",),
        ),
        ComputedFunction(
            "event_job_success_rate", "event_executions", "numeric", _event_job_success_rate
        ),
    )
}
"""Every SQL function the metadata may name for a computed field."""
