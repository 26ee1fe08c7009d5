"""SQLite's registered functions answer exactly as PostgreSQL does, case by case.

Each case runs on the test PostgreSQL server and on SQLite (through `service.storage.database.Database`,
which registers the emulation), and the answers must be equal.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from service.graphql.sql import sqlite_functions
from service.storage.database import Database

TEXTS = ["abc", "ABC", "a_c", "a%c", "a\\c", "", "xyz abc", "Ünïcode", "line\nbreak"]
LIKE_PATTERNS = ["a%", "A%", "%c", "a_c", "a\\_c", "a\\%c", "%", "_", "a\\\\c", "%B%", "line%"]
SIMILAR_PATTERNS = ["a%", "(a|x)%", "[a-c]+", "a_c", "%(bc|yz)", "a.c", "ab?c", "a{1}bc", "(_|_){0,24}X%",
                    "[[:alpha:]]%", "line_break"]  # fmt: skip
REGEXES = ["^a", "c$", "B", "[0-9]", "a.c", "^(abc|xyz)", "\\s"]
# SQLite runs patterns on RE2, whose syntax differs from PostgreSQL's in places: POSIX
# classes (Python's `re` has none), `.` across a newline, PostgreSQL's own escapes (`\y`
# word boundary, `\Z` end, `\b` backspace), bounded repetitions that make a backtracking
# engine take seconds (here cheap), leading `]` in a set, non-greedy quantifiers.
RE2_REGEXES = [
    "[[:alpha:]]+c", "^[[:upper:]]", "[[:digit:]]", "[[:space:]]", "[^[:alnum:]]", "line.break",
    "\\ybreak", "\\yabc\\y", "a\\Yb", "c\\Z", "\\b", "^(.|.){0,26}X", "^(.|.){0,3}c$", "a.*?c",
    "[]a]", "[^]a]c", "(?:ab|x)c", "^.{3}$",
]  # fmt: skip
DOCUMENTS = [
    {"a": 1, "b": [1, 2, {"c": "d"}], "e": None},
    [1, "a", {"x": 1}],
    ["a", "b"],
    "a",
    3,
    {},
    [],
    None,
    {"aa": 1, "b": True},
    {"a": 1.5, "b": [True, False]},
]


@pytest.fixture(scope="module")
def postgres(postgres_admin_url: str) -> Iterator[Any]:
    loop = asyncio.new_event_loop()
    connection = loop.run_until_complete(asyncpg.connect(postgres_admin_url))

    def query(sql: str, *args: Any) -> Any:
        return loop.run_until_complete(connection.fetchval(sql, *args))

    yield query
    loop.run_until_complete(connection.close())
    loop.close()


@pytest.fixture(scope="module")
def sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    path = Path(tmp_path_factory.mktemp("emulation")) / "e.db"
    database = Database(f"sqlite:///{path}")
    loop = asyncio.new_event_loop()

    async def fetch(sql: str, params: dict[str, Any]) -> Any:
        async with database.read() as conn:
            return (await conn.execute(sa.text(sql), params)).scalar()

    def query(sql: str, **params: Any) -> Any:
        return loop.run_until_complete(fetch(sql, params))

    yield query
    loop.run_until_complete(database.dispose())
    loop.close()


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


@pytest.mark.parametrize("pattern", LIKE_PATTERNS)
def test_like_and_ilike(postgres: Any, sqlite: Any, pattern: str) -> None:
    for text in TEXTS:
        for operator, function in (("LIKE", "pg_like"), ("ILIKE", "pg_ilike")):
            expected = postgres(f"SELECT $1::text {operator} $2::text", text, pattern)
            if operator == "ILIKE" and not text.isascii():
                continue  # the test server runs with the C locale: no Unicode case folding
            got = _bool(sqlite(f"SELECT {function}(:v, :p)", v=text, p=pattern))
            assert got == expected, (text, operator, pattern)


@pytest.mark.parametrize("pattern", SIMILAR_PATTERNS)
def test_similar_to(postgres: Any, sqlite: Any, pattern: str) -> None:
    for text in TEXTS:
        expected = postgres("SELECT $1::text SIMILAR TO $2::text", text, pattern)
        assert _bool(sqlite("SELECT pg_similar(:v, :p)", v=text, p=pattern)) == expected, (
            text,
            pattern,
        )


@pytest.mark.parametrize("pattern", REGEXES + RE2_REGEXES)
def test_regular_expressions(postgres: Any, sqlite: Any, pattern: str) -> None:
    for text in TEXTS:
        if not text.isascii():
            continue
        for operator, function in (("~", "pg_regex"), ("~*", "pg_iregex")):
            expected = postgres(f"SELECT $1::text {operator} $2::text", text, pattern)
            got = _bool(sqlite(f"SELECT {function}(:v, :p)", v=text, p=pattern))
            assert got == expected, (text, operator, pattern)


@pytest.mark.parametrize(
    "pattern", ["(a)\\1", "a(?=b)", "a(?!b)", "(?<=a)b", "(?<!a)b", "\\mabc", "abc\\M"]
)
def test_patterns_re2_cannot_run_are_refused_by_name_though_postgresql_takes_them(
    postgres: Any, pattern: str
) -> None:
    postgres("SELECT 'abc' ~ $1::text", pattern)  # valid for PostgreSQL
    with pytest.raises(sqlite_functions.UnsupportedPattern) as refused:
        sqlite_functions.posix_regex(pattern, False)
    assert refused.value.construct in str(refused.value) and refused.value.construct


def _jsonb(value: Any) -> str:
    return json.dumps(value)


def test_jsonb_containment_and_keys(postgres: Any, sqlite: Any) -> None:
    values = [d for d in DOCUMENTS if d is not None]
    probes = [*values, {"b": [2]}, {"b": [{"c": "d"}]}, {"a": 1.0}, [{"x": 1}], "b", 1]
    for document in values:
        for probe in probes:
            expected = postgres("SELECT $1::jsonb @> $2::jsonb", _jsonb(document), _jsonb(probe))
            got = _bool(
                sqlite("SELECT jsonb_contains(:a, :b)", a=_jsonb(document), b=_jsonb(probe))
            )
            assert got == expected, (document, probe)
        for key in ("a", "b", "x", "aa"):
            expected = postgres("SELECT $1::jsonb ? $2", _jsonb(document), key)
            assert (
                _bool(sqlite("SELECT jsonb_has_key(:a, :k)", a=_jsonb(document), k=key)) == expected
            )
        for keys in (["a", "zz"], ["a", "b"], ["zz"]):
            for operator, function in (("?|", "jsonb_has_any"), ("?&", "jsonb_has_all")):
                expected = postgres(
                    f"SELECT $1::jsonb {operator} $2::text[]", _jsonb(document), keys
                )
                got = _bool(
                    sqlite(f"SELECT {function}(:a, :k)", a=_jsonb(document), k=json.dumps(keys))
                )
                assert got == expected, (document, operator, keys)


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False


def test_jsonb_ordering_and_text(postgres: Any, sqlite: Any) -> None:
    values = [d for d in DOCUMENTS if d is not None] + [
        {"a": 2},
        {"b": 0},
        [1, 2],
        [2],
        "b",
        2.5,
        False,
    ]
    for left in values:
        # PostgreSQL keeps a number's text (1.50); Python's floats print their shortest
        # form, so the text form is compared for values without fractions.
        if not _has_float(left):
            expected_text = postgres("SELECT $1::jsonb::text", _jsonb(left))
            assert sqlite("SELECT jsonb_text(:a)", a=_jsonb(left)) == expected_text
        for right in values:
            expected = postgres(
                "SELECT CASE WHEN $1::jsonb < $2::jsonb THEN -1 WHEN $1::jsonb > $2::jsonb THEN 1 ELSE 0 END",
                _jsonb(left),
                _jsonb(right),
            )
            got = sqlite("SELECT jsonb_cmp(:a, :b)", a=_jsonb(left), b=_jsonb(right))
            assert got == expected, (left, right)


def test_jsonb_update_operators(postgres: Any, sqlite: Any) -> None:
    cases = [
        (
            "SELECT ($1::jsonb || $2::jsonb)::text",
            "jsonb_concat(:a, :b)",
            {"a": 1, "b": 2},
            {"b": 3, "c": 4},
        ),
        ("SELECT ($1::jsonb || $2::jsonb)::text", "jsonb_concat(:a, :b)", [1, 2], [3]),
        ("SELECT ($1::jsonb || $2::jsonb)::text", "jsonb_concat(:a, :b)", [1], 2),
        ("SELECT ($1::jsonb || $2::jsonb)::text", "jsonb_concat(:a, :b)", {"a": 1}, [2]),
    ]
    for pg_sql, sqlite_call, left, right in cases:
        expected = json.loads(postgres(pg_sql, _jsonb(left), _jsonb(right)))
        got = json.loads(sqlite(f"SELECT {sqlite_call}", a=_jsonb(left), b=_jsonb(right)))
        assert got == expected, (left, right)
    for document, key in (({"a": 1, "b": 2}, "a"), (["a", "b", "a"], "a"), ({"a": 1}, "zz")):
        expected = json.loads(
            postgres("SELECT ($1::jsonb - $2::text)::text", _jsonb(document), key)
        )
        assert (
            json.loads(sqlite("SELECT jsonb_delete_key(:a, :k)", a=_jsonb(document), k=key))
            == expected
        )
    for index in (0, 1, -1, 5, -5):
        expected = json.loads(
            postgres("SELECT ($1::jsonb - $2::int)::text", _jsonb([1, 2, 3]), index)
        )
        assert (
            json.loads(sqlite("SELECT jsonb_delete_elem(:a, :i)", a=_jsonb([1, 2, 3]), i=index))
            == expected
        )
    document = {"a": {"b": [1, {"c": 2}, 3]}, "d": 4}
    for path in (["a", "b", "1", "c"], ["a", "b", "-1"], ["d"], ["x", "y"], ["a", "b", "9"]):
        expected = json.loads(
            postgres("SELECT ($1::jsonb #- $2::text[])::text", _jsonb(document), path)
        )
        got = json.loads(
            sqlite("SELECT jsonb_delete_path(:a, :p)", a=_jsonb(document), p=json.dumps(path))
        )
        assert got == expected, path


def test_statistical_aggregates(postgres: Any, sqlite: Any) -> None:
    for values in ([1, 2, 2, 5], [7], [], [1.5, -2.25, 1e6]):
        union = (
            " UNION ALL ".join(f"SELECT {v} AS x" for v in values) or "SELECT 0.0 AS x WHERE false"
        )
        for function in ("stddev_samp", "stddev_pop", "var_samp", "var_pop"):
            expected = postgres(f"SELECT {function}(x)::float8 FROM ({union}) t")
            got = sqlite(f"SELECT {function}(x) FROM ({union}) t")
            if expected is None:
                assert got is None, (function, values)
            else:
                assert got == pytest.approx(expected, rel=1e-12), (function, values)
