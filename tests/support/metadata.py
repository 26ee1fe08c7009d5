"""Edited copies of the repository's Hasura metadata, for tests of other permissions."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from service.settings import REPO_ROOT

TABLES = Path("databases/observability/tables")


def metadata_with_function_filter(target: Path, *, limit: int | None = None) -> Path:
    """A copy of `hasura/metadata` at `target` where the viewer role sees only the
    invocations whose `source_function` is its `X-Hasura-Function` (at most `limit` rows
    a query when given). Returns `target`."""
    shutil.copytree(REPO_ROOT / "hasura" / "metadata", target)
    path = target / TABLES / "event_detector_observability_invocations.yaml"
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    permission = document["select_permissions"][0]["permission"]
    permission["filter"] = {"source_function": {"_eq": "X-Hasura-Function"}}
    if limit is not None:
        permission["limit"] = limit
    path.write_text(yaml.safe_dump(document))
    return target
