"""Hasura `where` filters: a Python evaluator of their meaning, and a hypothesis strategy.

`Evaluator(dataset).matches(table, bool_exp, row)` says whether PostgreSQL would select
`row` for the filter, computed from the dataset's Python rows alone (independent of the
engine): SQL three-valued logic (a comparison with NULL is unknown, `_not` of unknown is
unknown, only true selects), `_and: []` true, `_or: []` false, `_in: []` nothing,
`_nin: []` everything, relationships as "some related row matches", aggregate
predicates over the related rows, LIKE/SIMILAR TO/regular expressions as PostgreSQL
reads them, and jsonb equality, containment, keys and text as PostgreSQL defines them.

`where_filters(dataset, table)` draws filters over the columns, operators and
relationships below, with literals taken from the data (so filters match rows) and
around it (so they also miss).

Scope, by design: ASCII patterns only (case folding of non-ASCII text differs between
PostgreSQL's C locale and SQLite, as docs/graphql-api.md says), regular expressions from a
grammar PostgreSQL and Python read alike, and no jsonb ordering operators (tested
separately in test_graphql_queries).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from detector.observability.sqltypes import parse_timestamp
from tests.graphql_helpers import jsonb_text, like
from tests.support.dataset import Dataset

# table -> column -> kind (only the columns the filters use)
COLUMNS: dict[str, dict[str, str]] = {
    "invocations": {
        "id": "uuid",
        "created_at": "timestamptz",
        "correlation_id": "text",
        "source_function": "text",
        "status": "text",
        "source_user_email": "text",
        "error_message": "text",
        "total_duration_ms": "int",
        "delivery_attempt": "int",
        "auto_load_modules": "bool",
        "source_job_id": "uuid",
        "context_data": "jsonb",
        "source_event_payload": "jsonb",
    },
    "event_executions": {
        "id": "uuid",
        "event_name": "text",
        "status": "text",
        "detected": "bool",
        "detection_duration_ms": "int",
        "created_at": "timestamptz",
    },
    "job_executions": {
        "job_name": "text",
        "status": "text",
        "duration_ms": "int",
        "attempts": "int",
        "job_options": "jsonb",
        "result": "jsonb",
        "error_type": "text",
    },
}

# table -> relationship -> (target table, source column, target column, is array)
RELATIONSHIPS: dict[str, dict[str, tuple[str, str, str, bool]]] = {
    "invocations": {
        "event_executions": ("event_executions", "id", "invocation_id", True),
        "job_executions": ("job_executions", "id", "invocation_id", True),
        "source_job_execution": ("job_executions", "source_job_id", "id", False),
    },
    "event_executions": {
        "invocation": ("invocations", "invocation_id", "id", False),
        "job_executions": ("job_executions", "id", "event_execution_id", True),
    },
    "job_executions": {
        "event_execution": ("event_executions", "event_execution_id", "id", False),
    },
}

COMPARISONS = ("_eq", "_neq", "_gt", "_gte", "_lt", "_lte")
PATTERNS = (
    "_like",
    "_nlike",
    "_ilike",
    "_nilike",
    "_similar",
    "_nsimilar",
    "_regex",
    "_nregex",
    "_iregex",
    "_niregex",
)

Truth = bool | None


def _and(values: list[Truth]) -> Truth:
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def _or(values: list[Truth]) -> Truth:
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


def _not(value: Truth) -> Truth:
    return None if value is None else not value


# -- jsonb as PostgreSQL defines it ----------------------------------------------------


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def jsonb_equal(a: Any, b: Any) -> bool:
    """jsonb `=`: same kinds, numbers by value, objects by key set, arrays in order."""
    kind = _json_kind(a)
    if kind != _json_kind(b):
        return False
    if kind == "object":
        return a.keys() == b.keys() and all(jsonb_equal(a[k], b[k]) for k in a)
    if kind == "array":
        return len(a) == len(b) and all(jsonb_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def jsonb_contains(a: Any, b: Any, top: bool = True) -> bool:
    """jsonb `a @> b` (PostgreSQL's JsonbDeepContains)."""
    kind_a, kind_b = _json_kind(a), _json_kind(b)
    if kind_b == "object":
        return kind_a == "object" and all(
            key in a and jsonb_contains(a[key], value, False) for key, value in b.items()
        )
    if kind_b == "array":
        if kind_a != "array":
            return False
        return all(
            any(
                jsonb_contains(x, y, False)
                for x in a
                if (_json_kind(x) in ("array", "object")) == (_json_kind(y) in ("array", "object"))
            )
            for y in b
        )
    if kind_a == "array" and top:  # a top-level array contains its primitive elements
        return any(_json_kind(x) == kind_b and x == b for x in a)
    return kind_a == kind_b and bool(a == b)


def jsonb_has_key(value: Any, key: str) -> bool:
    """jsonb `?`: a top-level key, a string element of a top-level array, or the string."""
    if isinstance(value, dict):
        return key in value
    if isinstance(value, list):
        return any(isinstance(item, str) and item == key for item in value)
    return isinstance(value, str) and value == key


# -- patterns --------------------------------------------------------------------------


def similar_to_regex(pattern: str) -> str:
    """SIMILAR TO as a Python regex (for the patterns `_patterns` draws)."""
    out = []
    for c in pattern:
        if c == "%":
            out.append(".*")
        elif c == "_":
            out.append(".")
        elif c in "|()":
            out.append(c)
        else:
            out.append(re.escape(c))
    return "".join(out)


def _pattern(op: str, pattern: str, text: str) -> bool:
    base = op.replace("_n", "_", 1) if op.startswith("_n") else op
    if base == "_like":
        matched = like(pattern, text)
    elif base == "_ilike":
        matched = like(pattern, text, insensitive=True)
    elif base == "_similar":
        matched = re.fullmatch(similar_to_regex(pattern), text, re.DOTALL) is not None
    elif base == "_regex":
        matched = re.search(pattern, text) is not None
    elif base == "_iregex":
        matched = re.search(pattern, text, re.IGNORECASE) is not None
    else:
        raise ValueError(op)
    return not matched if op.startswith("_n") else matched


# -- the evaluator -----------------------------------------------------------------------


def _typed(kind: str, value: Any) -> Any:
    """A literal as the column's values are held in the dataset."""
    if value is None:
        return None
    if kind == "uuid":
        return str(uuid.UUID(str(value)))
    if kind == "timestamptz":
        return parse_timestamp(value)
    return value


class Evaluator:
    """Evaluates filters over the rows of a `Dataset`."""

    def __init__(self, dataset: Dataset) -> None:
        self.tables = {
            "invocations": dataset.invocations,
            "event_executions": dataset.event_executions,
            "job_executions": dataset.job_executions,
        }

    def select(self, table: str, bool_exp: Mapping[str, Any]) -> list[str]:
        """Sorted ids of the rows of `table` the filter selects."""
        return sorted(
            row["id"] for row in self.tables[table] if self.matches(table, bool_exp, row) is True
        )

    def matches(self, table: str, bool_exp: Mapping[str, Any], row: Mapping[str, Any]) -> Truth:
        results: list[Truth] = []
        for key, value in bool_exp.items():
            if key == "_and":
                results.append(_and([self.matches(table, v, row) for v in value]))
            elif key == "_or":
                results.append(_or([self.matches(table, v, row) for v in value]))
            elif key == "_not":
                results.append(_not(self.matches(table, value, row)))
            elif key in RELATIONSHIPS[table]:
                related = self._related(table, key, row)
                results.append(any(self.matches(self._target(table, key), value, r) is True
                                   for r in related))  # fmt: skip
            elif key.endswith("_aggregate"):
                name = key.removesuffix("_aggregate")
                related = self._related(table, name, row)
                spec = value["count"]
                target = self._target(table, name)
                if "filter" in spec:
                    related = [r for r in related if self.matches(target, spec["filter"], r)]
                results.append(self._compare("int", len(related), spec["predicate"]))
            else:
                results.append(self._compare(COLUMNS[table][key], row[key], value))
        return _and(results)

    def _target(self, table: str, relationship: str) -> str:
        return RELATIONSHIPS[table][relationship][0]

    def _related(self, table: str, relationship: str, row: Mapping[str, Any]) -> list[Any]:
        target, source_column, target_column, _ = RELATIONSHIPS[table][relationship]
        key = row[source_column]
        if key is None:
            return []
        return [r for r in self.tables[target] if r[target_column] == key]

    def _compare(self, kind: str, value: Any, comparison: Mapping[str, Any]) -> Truth:
        return _and([self._operator(kind, value, op, arg) for op, arg in comparison.items()])

    def _operator(self, kind: str, value: Any, op: str, arg: Any) -> Truth:
        if op == "_is_null":
            return (value is None) == arg
        if kind == "jsonb":
            return self._jsonb(value, op, arg)
        if op in ("_in", "_nin"):
            if not arg:
                return op == "_nin"
            if value is None:
                return None
            found = value in [_typed(kind, a) for a in arg]
            return found if op == "_in" else not found
        if value is None:
            return None
        if op in PATTERNS:
            return _pattern(op, arg, value)
        literal = _typed(kind, arg)
        return {
            "_eq": value == literal,
            "_neq": value != literal,
            "_gt": value > literal,
            "_gte": value >= literal,
            "_lt": value < literal,
            "_lte": value <= literal,
        }[op]

    def _jsonb(self, value: Any, op: str, arg: Any) -> Truth:
        if op == "_cast":  # NULL casts to NULL text, which `_is_null` can still test
            text = None if value is None else jsonb_text(value)
            return self._compare("text", text, arg["String"])
        if op in ("_in", "_nin"):
            if not arg:
                return op == "_nin"
            if value is None:
                return None
            found = any(jsonb_equal(value, a) for a in arg)
            return found if op == "_in" else not found
        if value is None:
            return None
        checks: dict[str, Callable[[], bool]] = {
            "_eq": lambda: jsonb_equal(value, arg),
            "_neq": lambda: not jsonb_equal(value, arg),
            "_contains": lambda: jsonb_contains(value, arg),
            "_contained_in": lambda: jsonb_contains(arg, value),
            "_has_key": lambda: jsonb_has_key(value, arg),
            "_has_keys_any": lambda: any(jsonb_has_key(value, k) for k in arg),
            "_has_keys_all": lambda: all(jsonb_has_key(value, k) for k in arg),
        }
        return checks[op]()


# -- the strategy ----------------------------------------------------------------------

_ASCII = st.characters(min_codepoint=32, max_codepoint=126)


class Rows:
    """The dataset's rows by table, for the strategies (a short repr: hypothesis prints
    the arguments of the strategies it reports)."""

    def __init__(self, dataset: Dataset) -> None:
        self.tables = {
            "invocations": dataset.invocations,
            "event_executions": dataset.event_executions,
            "job_executions": dataset.job_executions,
        }

    def __repr__(self) -> str:
        return "Rows(dataset)"


def _values(dataset: Rows, table: str, column: str) -> list[Any]:
    rows = dataset.tables[table]
    seen: list[Any] = []
    for row in rows:
        value = row[column]
        if value is not None and value not in seen:
            seen.append(value)
    return seen


@st.composite
def _like_pattern(draw: st.DrawFn, texts: list[str]) -> str:
    """A LIKE pattern derived from a real value: some characters become `_`, some runs
    `%`, maybe a changed case; or a random one."""
    if not texts or draw(st.integers(0, 5)) == 0:
        return draw(st.text(st.sampled_from("ab%_XYZ.-@"), max_size=6))
    text = draw(st.sampled_from(texts))
    out = []
    for c in text:
        roll = draw(st.integers(0, 9))
        if roll == 0:
            out.append("_")
        elif roll == 1:
            if not out or out[-1] != "%":
                out.append("%")
        elif roll == 2:
            out.append(c.swapcase())
        elif c in "%_\\":
            out.append("\\" + c)
        else:
            out.append(c)
    if draw(st.booleans()):
        out = [*out[: draw(st.integers(0, len(out)))], "%"]
    return "".join(out)


@st.composite
def _similar_pattern(draw: st.DrawFn, texts: list[str]) -> str:
    # Letters, `%`, `_` and one (x|y) alternation: read alike by PostgreSQL and by
    # `similar_to_regex` (no other metacharacter is drawn).
    words = [t for t in texts if re.fullmatch(r"[A-Za-z0-9 ]*", t)] or ["abc"]
    word = draw(st.sampled_from(words))
    head = word[: draw(st.integers(0, len(word)))]
    other = draw(st.sampled_from(words))
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return head + "%"
    if kind == 1:
        return "%" + word[len(head) :]
    if kind == 2:
        return f"({head}|{other[:3]})%"
    return "".join("_" if draw(st.integers(0, 4)) == 0 else c for c in word)


@st.composite
def _regex(draw: st.DrawFn, texts: list[str]) -> str:
    # A grammar PostgreSQL's ARE and Python's re agree on: literals, `.`, anchors,
    # bracket sets of letters, `*`, `+`, `?`, and one alternation group.
    text = draw(st.sampled_from(texts)) if texts else "abc"
    start = draw(st.integers(0, max(0, len(text) - 1)))
    piece = text[start : start + draw(st.integers(1, 4))]
    atoms = [re.escape(c) if not c.isalnum() else c for c in piece]
    parts = []
    for atom in atoms:
        roll = draw(st.integers(0, 7))
        if roll == 0:
            parts.append(".")
        elif roll == 1 and atom.isalpha():
            parts.append(f"[{atom}{atom.swapcase()}x]")
        elif roll == 2:
            parts.append(atom + draw(st.sampled_from(["*", "+", "?"])))
        else:
            parts.append(atom)
    body = "".join(parts)
    if draw(st.integers(0, 4)) == 0:
        body = f"({body}|zz)"
    return draw(st.sampled_from(["", "^"])) + body + draw(st.sampled_from(["", "$"]))


def _scalar_literals(dataset: Rows, table: str, column: str, kind: str) -> st.SearchStrategy:
    values = _values(dataset, table, column)
    if kind == "text":
        return st.sampled_from(values) | st.text(_ASCII, max_size=8) if values else st.text()
    if kind == "int":
        return (st.sampled_from(values) if values else st.nothing()) | st.integers(-5, 1200)
    if kind == "bool":
        return st.booleans()
    if kind == "uuid":
        known = st.sampled_from(values) if values else st.nothing()
        return known | known.map(str.upper) | st.uuids().map(str)
    if kind == "timestamptz":

        def shifted(value: datetime, delta: int, offset: int) -> str:
            moved = value + timedelta(microseconds=delta)
            return moved.astimezone(timezone(timedelta(hours=offset))).isoformat()

        return st.builds(
            shifted,
            st.sampled_from(values),
            st.sampled_from([0, 0, 1, -1, 10**6, -(10**9)]),
            st.sampled_from([0, 2, -5]),
        )
    raise ValueError(kind)


_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from(["eu", "us", "a", "t1", "shipped", "fast", "slow"])
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["region", "attempt", "queue", "retries", "x"]), children,
                      max_size=2),
    max_leaves=5,
).filter(lambda value: value is not None)  # fmt: skip
# A GraphQL null is not a jsonb null: top-level literals are never None.


def _fragments(value: Any) -> list[Any]:
    """Parts of a jsonb value a containment filter can ask for."""
    out = [value]
    if isinstance(value, dict):
        for key, item in value.items():
            out.append({key: item})
            out += [{key: part} for part in _fragments(item)[1:]]
    elif isinstance(value, list):
        out += [[item] for item in value]
        out += [item for item in value if not isinstance(item, dict | list)]
    return out


def _keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return list(value)
    return []


def _comparison(
    draw: st.DrawFn, dataset: Rows, table: str, column: str, kind: str
) -> dict[str, Any]:
    if kind == "jsonb":
        values = _values(dataset, table, column)
        fragments = [f for v in values for f in _fragments(v)] or [{}]
        keys = sorted({k for v in values for k in _keys(v)} | {"missing"})
        known = st.sampled_from(fragments)
        op = draw(
            st.sampled_from(
                ["_eq", "_neq", "_in", "_nin", "_contains", "_contained_in", "_has_key",
                 "_has_keys_any", "_has_keys_all", "_is_null", "_cast"]
            )
        )  # fmt: skip
        if op == "_is_null":
            return {op: draw(st.booleans())}
        if op in ("_in", "_nin"):
            return {op: draw(st.lists(known | _JSON, max_size=3))}
        if op == "_has_key":
            return {op: draw(st.sampled_from(keys))}
        if op in ("_has_keys_any", "_has_keys_all"):
            return {op: draw(st.lists(st.sampled_from(keys), max_size=3))}
        if op == "_cast":
            texts = [jsonb_text(v) for v in values]
            inner = draw(st.sampled_from(["_eq", "_like", "_ilike", "_regex", "_is_null"]))
            if inner == "_eq":
                return {op: {"String": {inner: draw(st.sampled_from(texts))}}}
            if inner == "_is_null":
                return {op: {"String": {inner: draw(st.booleans())}}}
            if inner == "_regex":
                return {op: {"String": {inner: draw(_regex(texts))}}}
            return {op: {"String": {inner: draw(_like_pattern(texts))}}}
        if op == "_contained_in":
            # Supersets of real values, so that some rows are contained.
            base = draw(st.sampled_from(values)) if values else {}
            extra = draw(_JSON)
            if isinstance(base, dict) and isinstance(extra, dict):
                return {op: {**extra, **base}}
            return {op: draw(st.sampled_from([base, extra]))}
        return {op: draw(known | _JSON)}
    op_choices = ["_eq", "_neq", "_gt", "_gte", "_lt", "_lte", "_in", "_nin", "_is_null"]
    if kind == "text":
        op_choices += list(PATTERNS)
    op = draw(st.sampled_from(op_choices))
    literal = _scalar_literals(dataset, table, column, kind)
    if op == "_is_null":
        return {op: draw(st.booleans())}
    if op in ("_in", "_nin"):
        return {op: draw(st.lists(literal, max_size=3))}
    if op in PATTERNS:
        texts = [v for v in _values(dataset, table, column) if v.isascii()]
        base = op.replace("_n", "_", 1) if op.startswith("_n") else op
        if base in ("_like", "_ilike"):
            return {op: draw(_like_pattern(texts))}
        if base == "_similar":
            return {op: draw(_similar_pattern(texts))}
        return {op: draw(_regex(texts))}
    return {op: draw(literal)}


@st.composite
def where_filters(
    draw: st.DrawFn, dataset: Rows, table: str = "invocations", depth: int = 2
) -> dict[str, Any]:
    """A `<table>_bool_exp` over the dataset (see the module docstring)."""
    choices = ["column", "column", "column"]
    if depth > 0:
        choices += ["and", "or", "not"]
        if RELATIONSHIPS.get(table):
            choices.append("relationship")
        if any(array for *_, array in RELATIONSHIPS.get(table, {}).values()):
            choices.append("aggregate")
    kind = draw(st.sampled_from(choices))
    if kind == "and":
        return {"_and": draw(st.lists(where_filters(dataset, table, depth - 1), max_size=3))}
    if kind == "or":
        return {"_or": draw(st.lists(where_filters(dataset, table, depth - 1), max_size=3))}
    if kind == "not":
        return {"_not": draw(where_filters(dataset, table, depth - 1))}
    if kind in ("relationship", "aggregate"):
        names = list(RELATIONSHIPS[table])
        if kind == "aggregate":
            names = [n for n in names if RELATIONSHIPS[table][n][3]]
        name = draw(st.sampled_from(names))
        target = RELATIONSHIPS[table][name][0]
        inner = draw(where_filters(dataset, target, depth - 1))
        if kind == "relationship":
            return {name: inner}
        count: dict[str, Any] = {
            "predicate": {draw(st.sampled_from(COMPARISONS)): draw(st.integers(0, 4))}
        }
        if draw(st.booleans()):
            count["filter"] = inner
        return {f"{name}_aggregate": {"count": count}}
    column = draw(st.sampled_from(sorted(COLUMNS[table])))
    condition = _comparison(draw, dataset, table, column, COLUMNS[table][column])
    if draw(st.integers(0, 4)) == 0:  # two operators on one column are ANDed
        condition.update(_comparison(draw, dataset, table, column, COLUMNS[table][column]))
    return {column: condition}


def string_literals(value: Any) -> list[str]:
    """Every string in a filter (values, patterns, keys of jsonb literals)."""
    out: list[str] = []
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not key.startswith("_"):
                out.append(key)
            out += string_literals(item)
    elif isinstance(value, list):
        for item in value:
            out += string_literals(item)
    return out


def as_json(value: Any) -> str:
    """Compact JSON, for messages."""
    return json.dumps(value, default=str)[:2000]
