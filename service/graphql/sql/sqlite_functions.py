"""PostgreSQL semantics that SQLite lacks, as Python functions registered on each connection.

`service.storage.database.Database` registers these on every SQLite connection, so that the GraphQL
engine compiles one filter to SQL that answers the same on both backends:

- pattern matching: `LIKE` is case-sensitive in PostgreSQL (SQLite's is not),
  `ILIKE`, `SIMILAR TO` and POSIX regular expressions do not exist in SQLite; all of them
  run on RE2 (linear time in the text, whatever the pattern);
- jsonb operators: containment (`@>`), key existence (`?`, `?|`, `?&`), ordering and
  equality of jsonb values, the text form of a jsonb value (`::text`) and the
  mutation operators (`||`, `-`, `#-`);
- the aggregates `stddev_samp`, `stddev_pop`, `var_samp`, `var_pop`;
- a `jsonb` collation, so `ORDER BY` on a jsonb column follows jsonb's ordering;
- `pg_json(value, kind)`: a numeric or jsonb value as the response writes it, for the
  responses SQLite builds as JSON (`sql/documents.py`): the row-by-row path's own
  serialisers, so both paths answer the same text.

Values arrive as SQLite stores them (JSON as text); NULL in gives NULL out, as in SQL.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable
from typing import Any

import orjson
import re2

from detector.observability.sqltypes import jsonb_order
from service.graphql.catalog.scalars import STRINGIFIABLE, serializer_for

# --- pattern matching --------------------------------------------------------------------
#
# Every pattern operator runs on RE2, whose matching time is linear in the text: a pattern
# like `^(.|.){0,26}X`, which makes a backtracking engine (Python's `re`) take seconds per
# row while holding the GIL and the connection, costs microseconds. RE2 has no
# back-references and no look-around (PostgreSQL has both); a pattern using them is refused
# by name (`UnsupportedPattern`) instead of being evaluated differently.


class PatternError(ValueError):
    """A pattern the SQLite emulation will not evaluate; `str()` says why."""


class InvalidPattern(PatternError):
    """A pattern PostgreSQL would refuse too (its message follows PostgreSQL's wording)."""


class UnsupportedPattern(PatternError):
    """A valid PostgreSQL pattern using a construct RE2 cannot evaluate in linear time."""

    def __init__(self, construct: str) -> None:
        super().__init__(construct)
        self.construct = construct


# PostgreSQL's escapes that mean something else (or nothing) in RE2, outside brackets.
_ARE_ESCAPES = {"y": r"\b", "Y": r"\B", "Z": r"\z", "b": r"\x08"}
_UNSUPPORTED_ESCAPES = {"m": "the word-start anchor \\m", "M": "the word-end anchor \\M"}
_LOOK_AROUND = ("(?=", "(?!", "(?<=", "(?<!")


def posix_to_re2(pattern: str) -> str:
    """A PostgreSQL (ARE) regular expression in RE2's syntax.

    Rewrites the escapes whose meaning differs (`\\y` word boundary, `\\Z` end, `\\b`
    backspace) and raises `UnsupportedPattern` for back-references, look-around and the
    `\\m`/`\\M` anchors. Everything else (POSIX classes such as `[[:alpha:]]`, bounds,
    non-greedy quantifiers) is the same in both.
    """
    out: list[str] = []
    position, length = 0, len(pattern)
    in_bracket = False
    while position < length:
        char = pattern[position]
        pair = pattern[position : position + 2]
        if in_bracket:
            if pair == "[:":
                close = pattern.find(":]", position + 2)
                if close != -1:
                    out.append(pattern[position : close + 2])
                    position = close + 2
                    continue
            if char == "\\":
                out.append(pair)
                position += 2
                continue
            in_bracket = char != "]"
            out.append(char)
            position += 1
            continue
        if char == "\\":
            escaped = pair[1:]
            if escaped.isdigit() and escaped != "0":
                raise UnsupportedPattern(f"a back-reference (\\{escaped})")
            if escaped in _UNSUPPORTED_ESCAPES:
                raise UnsupportedPattern(_UNSUPPORTED_ESCAPES[escaped])
            out.append(_ARE_ESCAPES.get(escaped, pair))
            position += 2
            continue
        if char == "(" and pattern.startswith(_LOOK_AROUND, position):
            construct = next(p for p in _LOOK_AROUND if pattern.startswith(p, position))
            raise UnsupportedPattern(f"look-around ({construct}...)")
        out.append(char)
        position += 1
        if char == "[":
            # A leading `^`, then a leading `]`, belong to the set.
            in_bracket = True
            for member in ("^", "]"):
                if pattern.startswith(member, position):
                    out.append(member)
                    position += 1
    return "".join(out)


def _compile(pattern: str, *, case_insensitive: bool = False) -> Any:
    """`pattern` (RE2 syntax) compiled; raises `PatternError` when RE2 refuses it."""
    options = re2.Options()
    options.case_sensitive = not case_insensitive
    options.dot_nl = True  # PostgreSQL's `.` matches a newline too
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as error:
        reason = error.args[0] if error.args else "invalid pattern"
        message = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        if message.startswith(("invalid repetition size", "pattern too large")):
            raise UnsupportedPattern(
                f"repetitions beyond RE2's bound ({message}; nested counts multiply, at most "
                "1000 in all)"
            ) from None
        raise InvalidPattern(message) from None


@functools.lru_cache(maxsize=512)
def like_regex(pattern: str, case_insensitive: bool) -> Any:
    """A compiled RE2 regex for a PostgreSQL LIKE pattern (`%`, `_`, backslash escapes)."""
    out: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(re.escape(char))
    return _compile("".join(out), case_insensitive=case_insensitive)


@functools.lru_cache(maxsize=512)
def similar_regex(pattern: str) -> Any:
    """A compiled RE2 regex for a SQL `SIMILAR TO` pattern (matched against the whole value)."""
    out: list[str] = []
    chars = iter(pattern)
    in_bracket = in_class = False
    for char in chars:
        if char == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif in_bracket:
            # `[:alpha:]` inside a set is a POSIX class: its `]` does not close the set.
            if char == ":" and out[-1] == "[":
                in_class = True
            elif char == "]" and out[-1] == ":" and in_class:
                in_class = False
            elif char == "]":
                in_bracket = False
            out.append(char)
        elif char == "[":
            in_bracket = True
            out.append(char)
        elif char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        elif char in "|*+?{}()":
            out.append(char)
        elif char.isdigit() or char == ",":
            # Digits and commas appear inside {m,n} repetitions; outside them they
            # are literal either way.
            out.append(char)
        else:
            out.append(re.escape(char))
    return _compile("".join(out))


@functools.lru_cache(maxsize=512)
def posix_regex(pattern: str, case_insensitive: bool) -> Any:
    """A compiled RE2 regex for a PostgreSQL POSIX pattern; raises `PatternError`."""
    return _compile(posix_to_re2(pattern), case_insensitive=case_insensitive)


PATTERN_COMPILERS: dict[str, Callable[[str], Any]] = {
    "pg_like": lambda pattern: like_regex(pattern, False),
    "pg_ilike": lambda pattern: like_regex(pattern, True),
    "pg_similar": similar_regex,
    "pg_regex": lambda pattern: posix_regex(pattern, False),
    "pg_iregex": lambda pattern: posix_regex(pattern, True),
}
"""Registered pattern function → its compiler (which raises `PatternError`)."""


def sql_like(value: str | None, pattern: str | None) -> int | None:
    """`value LIKE pattern` with PostgreSQL's case sensitivity."""
    if value is None or pattern is None:
        return None
    return int(like_regex(pattern, False).fullmatch(str(value)) is not None)


def sql_ilike(value: str | None, pattern: str | None) -> int | None:
    """`value ILIKE pattern` (Unicode case folding, unlike SQLite's ASCII-only LIKE)."""
    if value is None or pattern is None:
        return None
    return int(like_regex(pattern, True).fullmatch(str(value)) is not None)


def sql_similar(value: str | None, pattern: str | None) -> int | None:
    """`value SIMILAR TO pattern`."""
    if value is None or pattern is None:
        return None
    return int(similar_regex(pattern).fullmatch(str(value)) is not None)


def sql_regex(value: str | None, pattern: str | None) -> int | None:
    """`value ~ pattern` (unanchored search)."""
    if value is None or pattern is None:
        return None
    return int(posix_regex(pattern, False).search(str(value)) is not None)


def sql_iregex(value: str | None, pattern: str | None) -> int | None:
    """`value ~* pattern`."""
    if value is None or pattern is None:
        return None
    return int(posix_regex(pattern, True).search(str(value)) is not None)


# --- jsonb ---------------------------------------------------------------------------------


def _load(text: Any) -> Any:
    return json.loads(text) if isinstance(text, str | bytes) else text


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_equal(left: Any, right: Any) -> bool:
    """jsonb equality: numbers by value, booleans distinct from numbers, keys unordered."""
    if _is_number(left) and _is_number(right):
        return left == right
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    return left == right


def json_contains(container: Any, contained: Any, *, top_level: bool = True) -> bool:
    """PostgreSQL's `@>` on parsed JSON values."""
    if isinstance(container, dict):
        if not isinstance(contained, dict):
            return False
        return all(
            key in container and json_contains(container[key], value, top_level=False)
            for key, value in contained.items()
        )
    if isinstance(container, list):
        if isinstance(contained, list):
            return all(
                any(json_contains(item, wanted, top_level=False) for item in container)
                for wanted in contained
            )
        # Only a top-level array contains a bare scalar.
        if top_level and not isinstance(contained, dict):
            return any(
                not isinstance(item, dict | list) and json_equal(item, contained)
                for item in container
            )
        return False
    return not isinstance(contained, dict | list) and json_equal(container, contained)


def _type_rank(value: Any) -> int:
    # jsonb ordering: Object > Array > Boolean > Number > String > Null
    if value is None:
        return 0
    if isinstance(value, str):
        return 1
    if isinstance(value, bool):
        return 3
    if _is_number(value):
        return 2
    if isinstance(value, list):
        return 4
    return 5


def json_compare(left: Any, right: Any, *, top_level: bool = True) -> int:
    """jsonb's btree ordering of two parsed values: -1, 0 or 1."""
    if top_level and isinstance(left, list) != isinstance(right, list):
        if not isinstance(left, dict) and not isinstance(right, dict):
            # PostgreSQL stores a top-level scalar as a one-element "raw scalar" array:
            # element counts decide first (so [] sorts below any scalar), then the
            # scalar sorts below the array.
            left_count = len(left) if isinstance(left, list) else 1
            right_count = len(right) if isinstance(right, list) else 1
            if left_count != right_count:
                return -1 if left_count < right_count else 1
            return -1 if not isinstance(left, list) else 1
    left_rank, right_rank = _type_rank(left), _type_rank(right)
    if left_rank != right_rank:
        return -1 if left_rank < right_rank else 1
    if isinstance(left, dict):
        if len(left) != len(right):
            return -1 if len(left) < len(right) else 1
        left_items = list(jsonb_order(left).items())
        right_items = list(jsonb_order(right).items())
        for (lk, lv), (rk, rv) in zip(left_items, right_items, strict=True):
            left_key, right_key = (len(lk.encode()), lk.encode()), (len(rk.encode()), rk.encode())
            if left_key != right_key:
                return -1 if left_key < right_key else 1
            value_order = json_compare(lv, rv, top_level=False)
            if value_order:
                return value_order
        return 0
    if isinstance(left, list):
        if len(left) != len(right):
            return -1 if len(left) < len(right) else 1
        for lv, rv in zip(left, right, strict=True):
            order = json_compare(lv, rv, top_level=False)
            if order:
                return order
        return 0
    if isinstance(left, str):
        left, right = left.encode(), right.encode()
    if left == right:
        return 0
    return -1 if left < right else 1


def jsonb_text(value: str | None) -> str | None:
    """The text PostgreSQL prints for a jsonb value (`value::text`)."""
    if value is None:
        return None
    return json.dumps(jsonb_order(_load(value)), ensure_ascii=False, separators=(", ", ": "))


def jsonb_contains(container: str | None, contained: str | None) -> int | None:
    if container is None or contained is None:
        return None
    return int(json_contains(_load(container), _load(contained)))


def _has_key(value: Any, key: str) -> bool:
    if isinstance(value, dict):
        return key in value
    if isinstance(value, list):
        return any(isinstance(item, str) and item == key for item in value)
    return isinstance(value, str) and value == key


def jsonb_has_key(value: str | None, key: str | None) -> int | None:
    if value is None or key is None:
        return None
    return int(_has_key(_load(value), key))


def jsonb_has_any(value: str | None, keys: str | None) -> int | None:
    if value is None or keys is None:
        return None
    parsed = _load(value)
    return int(any(_has_key(parsed, key) for key in _load(keys)))


def jsonb_has_all(value: str | None, keys: str | None) -> int | None:
    if value is None or keys is None:
        return None
    parsed = _load(value)
    return int(all(_has_key(parsed, key) for key in _load(keys)))


def jsonb_cmp(left: str | None, right: str | None) -> int | None:
    if left is None or right is None:
        return None
    return json_compare(_load(left), _load(right))


def jsonb_collation(left: str, right: str) -> int:
    return json_compare(_load(left), _load(right))


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def jsonb_concat(left: str | None, right: str | None) -> str | None:
    """PostgreSQL's `jsonb || jsonb`."""
    if left is None or right is None:
        return None
    a, b = _load(left), _load(right)
    if isinstance(a, dict) and isinstance(b, dict):
        return _dump({**a, **b})
    a_list = a if isinstance(a, list) else [a]
    b_list = b if isinstance(b, list) else [b]
    return _dump(a_list + b_list)


def jsonb_delete_key(value: str | None, key: str | None) -> str | None:
    """PostgreSQL's `jsonb - text`."""
    if value is None or key is None:
        return None
    parsed = _load(value)
    if isinstance(parsed, dict):
        parsed.pop(key, None)
    elif isinstance(parsed, list):
        parsed = [item for item in parsed if not (isinstance(item, str) and item == key)]
    return _dump(parsed)


def jsonb_delete_elem(value: str | None, index: int | None) -> str | None:
    """PostgreSQL's `jsonb - integer` (negative indexes count from the end)."""
    if value is None or index is None:
        return None
    parsed = _load(value)
    if not isinstance(parsed, list):
        raise ValueError("cannot delete from scalar or object using integer index")
    if -len(parsed) <= index < len(parsed):
        del parsed[index]
    return _dump(parsed)


def jsonb_delete_path(value: str | None, path: str | None) -> str | None:
    """PostgreSQL's `jsonb #- text[]` (path given as a JSON array of strings)."""
    if value is None or path is None:
        return None
    parsed = _load(value)
    steps = _load(path)
    if not steps:
        return _dump(parsed)
    node = parsed
    for step in steps[:-1]:
        if isinstance(node, dict) and step in node:
            node = node[step]
        elif isinstance(node, list) and _index(step, len(node)) is not None:
            node = node[_index(step, len(node))]  # type: ignore[index]
        else:
            return _dump(parsed)
    last = steps[-1]
    if isinstance(node, dict):
        node.pop(last, None)
    elif isinstance(node, list):
        position = _index(last, len(node))
        if position is not None:
            del node[position]
    return _dump(parsed)


def _index(step: str, length: int) -> int | None:
    try:
        position = int(step)
    except ValueError:
        return None
    if position < 0:
        position += length
    return position if 0 <= position < length else None


# --- aggregates ------------------------------------------------------------------------------


class _Moments:
    """Welford's online mean and variance (numerically stable, one pass)."""

    sample: bool = True
    root: bool = False

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0

    def step(self, value: Any) -> None:
        if value is None:
            return
        x = float(value)
        self.count += 1
        delta = x - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (x - self.mean)

    def finalize(self) -> float | None:
        divisor = self.count - 1 if self.sample else self.count
        if divisor <= 0:
            return None if self.count == 0 or self.sample else 0.0
        variance = max(self.m2 / divisor, 0.0)
        return math.sqrt(variance) if self.root else variance


class VarSamp(_Moments):
    sample, root = True, False


class VarPop(_Moments):
    sample, root = False, False


class StddevSamp(_Moments):
    sample, root = True, True


class StddevPop(_Moments):
    sample, root = False, True


# --- values in JSON responses ------------------------------------------------------------

_JSON_KINDS = ("numeric", "float8", "Float", "jsonb")
"""Scalars whose JSON text SQLite cannot write as PostgreSQL does (float digits, jsonb
key order); with stringified numbers, also bigint."""


def json_serializer_name(scalar: str, *, stringify_numeric: bool) -> str | None:
    """The `kind` argument of `pg_json` for a value of `scalar`, or None if SQLite's own
    JSON already writes it right."""
    if stringify_numeric and scalar in STRINGIFIABLE:
        return f"{scalar}:text"
    return scalar if scalar in _JSON_KINDS else None


def _jsonb_value(text: Any) -> Any:
    return jsonb_order(json.loads(text)) if isinstance(text, str) else text


def _json_writers() -> dict[str, Callable[[Any], Any]]:
    writers: dict[str, Callable[[Any], Any]] = {"jsonb": _jsonb_value}
    for scalar in ("numeric", "float8", "Float"):
        writers[scalar] = serializer_for(scalar, stringify_numeric=False)
    for scalar in STRINGIFIABLE:
        writers[f"{scalar}:text"] = serializer_for(scalar, stringify_numeric=True)
    return writers


_JSON_WRITERS = _json_writers()


def pg_json(value: Any, kind: str) -> str | None:
    """`value` (of the scalar `kind` names, see `json_serializer_name`) as JSON text."""
    if value is None:
        return None
    return orjson.dumps(_JSON_WRITERS[kind](value)).decode()


SCALAR_FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "pg_like": (2, sql_like),
    "pg_ilike": (2, sql_ilike),
    "pg_similar": (2, sql_similar),
    "pg_regex": (2, sql_regex),
    "pg_iregex": (2, sql_iregex),
    "jsonb_text": (1, jsonb_text),
    "jsonb_contains": (2, jsonb_contains),
    "jsonb_has_key": (2, jsonb_has_key),
    "jsonb_has_any": (2, jsonb_has_any),
    "jsonb_has_all": (2, jsonb_has_all),
    "jsonb_cmp": (2, jsonb_cmp),
    "jsonb_concat": (2, jsonb_concat),
    "jsonb_delete_key": (2, jsonb_delete_key),
    "jsonb_delete_elem": (2, jsonb_delete_elem),
    "jsonb_delete_path": (2, jsonb_delete_path),
    "pg_json": (2, pg_json),
}
"""Name → (number of arguments, implementation) of the registered scalar functions."""

AGGREGATES: dict[str, type[_Moments]] = {
    "var_samp": VarSamp,
    "var_pop": VarPop,
    "stddev_samp": StddevSamp,
    "stddev_pop": StddevPop,
}
"""Name → implementation of the registered aggregate functions (one argument each)."""

COLLATIONS: dict[str, Callable[[str, str], int]] = {"jsonb": jsonb_collation}
