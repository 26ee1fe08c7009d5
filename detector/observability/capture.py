"""What the plugin keeps of a value: redaction, safe serialisation and size caps.

Everything the plugin stores as JSON (payloads, contexts, job options, results, log data)
goes through `Sanitizer.to_json` before it is buffered:

1. keys whose lower-cased name contains a deny-list word (SPEC §5a: `api_token` matches
   `token`) keep the key and get the value `"[redacted]"`;
2. the user's `redact(value, path)` callback sees every value (path = tuple of keys and
   list indexes from the root) and returns what to keep;
3. anything JSON cannot hold becomes a safe description: circular references, arbitrary
   objects, bytes, NaN/infinity; datetimes, UUIDs, Decimals, enums, sets, dataclasses and
   exceptions get a faithful JSON form (`detector.jsonsafe`, the rules
   `ListenResult.to_dict()` follows too);
4. a value whose JSON text exceeds the cap is replaced by an explicit truncation marker.

None of this raises: a value that defeats every rule becomes a description of its type.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import json.encoder
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..jsonsafe import JsonSafe, Path, describe, truncate_text

REDACTED = "[redacted]"

DEFAULT_REDACT_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "card",
    "ssn",
    "cookie",
    "session_token",
    "session_id",
    "session-id",
    "sessionid",
    "session_key",
    "private_key",
    "credential",
)
"""Deny-list words matched case-insensitively as substrings of keys (SPEC §5a).

Not the bare word `session`: it would redact Hasura's whole `session_variables` object
(role and user, which users need); the secrets inside it are caught by their own words
(`x-hasura-admin-secret` by `secret`, any `…-token` by `token`)."""

# truncate_text is re-exported: the plugin and its tests take it from here.
__all__ = [
    "DEFAULT_REDACT_KEYS",
    "REDACTED",
    "RedactCallback",
    "Sanitizer",
    "SnapshotEncoder",
    "truncate_text",
]

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_SIMPLE = (str, int, bool, type(None))

RedactCallback = Callable[[Any, Path], Any]


class Sanitizer(JsonSafe):
    """Turns any value into redacted, JSON-safe, size-capped data.

    `redact_keys` are deny-list words (case-insensitive substrings of keys); `redact` is the
    user's callback; `max_value_bytes` caps the JSON text of one value (in characters).
    Thread-safe: it holds no per-call state.
    """

    def __init__(
        self,
        *,
        redact_keys: Iterable[str] = DEFAULT_REDACT_KEYS,
        redact: RedactCallback | None = None,
        max_value_bytes: int = 256 * 1024,
    ) -> None:
        words = sorted({word.lower() for word in redact_keys if word})
        self._deny = re.compile("|".join(re.escape(w) for w in words)) if words else None
        self._redact = redact
        self.max_value_bytes = max_value_bytes
        self.redaction_errors = 0
        # Snapshot text can be kept as it is when no deny word occurs anywhere in it (so
        # in no key). That test is only sound for words JSON writes verbatim and whose
        # lower case does not depend on context: printable ASCII without `"` and `\`.
        self._text_fast_path = redact is None and all(
            word.isascii() and word.isprintable() and '"' not in word and "\\" not in word
            for word in words
        )

    def is_denied(self, key: str) -> bool:
        """Whether values under `key` are redacted by the deny-list."""
        return self._deny is not None and self._deny.search(key.lower()) is not None

    def to_json(self, value: Any) -> str | None:
        """Compact JSON text of the cleaned `value`, capped; None stays None (SQL NULL)."""
        if value is None:
            return None
        cleaned = value if self._is_flat(value) else self.clean(value)
        try:
            text = _ENCODER.encode(cleaned)
        except (TypeError, ValueError):  # pragma: no cover - clean() output is JSON-safe
            text = json.dumps(describe(value))
        if len(text) > self.max_value_bytes:
            return json.dumps(self._truncated(cleaned, text), separators=(",", ":"))
        return text

    def snapshot_to_json(self, text: str) -> str | None:
        """`to_json` of the value `text` holds (JSON from `SnapshotEncoder`).

        The text itself is returned when cleaning could not change it: within the cap,
        no `NaN`/`Infinity` token (JSON has none; they become strings), and no deny word
        anywhere in it, so none in a key. Otherwise it is parsed and cleaned in full.
        """
        if text == "null":
            return None
        if (
            self._text_fast_path
            and len(text) <= self.max_value_bytes
            and (self._deny is None or self._deny.search(text.lower()) is None)
            and "NaN" not in text
            and "Infinity" not in text
        ):
            return text
        return self.to_json(json.loads(text))

    def _is_flat(self, value: Any) -> bool:
        """A scalar, or a dict of str keys to simple scalars none of them denied: such a
        value needs no cleaning (the common case of options and results; a fast path)."""
        if self._redact is not None:
            return False
        kind = value.__class__
        if kind is str or kind is int or kind is bool:
            return True
        if kind is not dict:
            return False
        deny = self._deny
        for key, item in value.items():
            if key.__class__ is not str or item.__class__ not in _SIMPLE:
                return False
            if deny is not None and deny.search(key.lower()):
                return False
        return True

    def _truncated(self, cleaned: Any, text: str) -> dict[str, Any]:
        marker: dict[str, Any] = {
            "_truncated": True,
            "_reason": f"value exceeds the cap of {self.max_value_bytes} characters",
            "_original_size": len(text),
            "_type": type(cleaned).__name__,
        }
        if isinstance(cleaned, dict):
            marker["_keys"] = list(cleaned)[:20]
        preview = max(0, min(1000, self.max_value_bytes // 4))
        marker["_preview"] = text[:preview]
        return marker

    def _visit(self, value: Any, path: Path) -> Any:
        if self._redact is None:
            return value
        try:
            return self._redact(value, path)
        except Exception:
            # A failing callback must not leak what it was meant to hide.
            self.redaction_errors += 1
            return "[redaction failed]"

    def _entry(self, name: str, item: Any, path: Path, active: set[int], depth: int) -> Any:
        if self.is_denied(name):
            return REDACTED
        return super()._entry(name, item, path, active, depth)


class SnapshotEncoder:
    """Freezes a value as compact JSON text, fast (the C encoder), without cleaning it.

    The plugin's hooks take this snapshot on the host's path so that the writer thread
    can clean it later (`Sanitizer.to_json(json.loads(text))`) and still record the
    value as it was when the hook ran. Types JSON lacks get the same JSON form the
    sanitizer gives them (datetimes, UUIDs, Decimals, enums, sets, dataclasses,
    exceptions, bytes, other objects as a description). Raises (TypeError, ValueError,
    RecursionError) for what only the sanitizer can describe: circular references and
    keys JSON cannot hold; callers then fall back to `Sanitizer.to_json`.
    """

    def __init__(self) -> None:
        self._describer = JsonSafe()
        make = getattr(json.encoder, "c_make_encoder", None)
        if make is not None:
            # No circular-reference markers: a cycle ends in RecursionError, which the
            # caller turns into the sanitizer's "[circular reference]".
            self._encode = make(
                None, self._default, json.encoder.encode_basestring, None, ":", ",",
                False, False, True,
            )  # fmt: skip
        else:  # pragma: no cover - interpreters without the C accelerator
            encoder = json.JSONEncoder(
                separators=(",", ":"), ensure_ascii=False, default=self._default
            )
            self._encode = lambda value, _level: [encoder.encode(value)]

    def encode(self, value: Any) -> str:
        """`value` as JSON text (see the class docstring for what raises)."""
        return "".join(self._encode(value, 0))

    def _default(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            return dict(value)
        if isinstance(value, set | frozenset):
            try:
                return sorted(value)
            except TypeError:
                return list(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
        if isinstance(value, enum.Enum):
            return value.value
        return self._describer._scalar(value)
