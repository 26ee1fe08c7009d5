"""The response budget: how many row objects one request's answer may hold.

`max_rows` bounds each SELECT; it does not bound the response. Relationships are loaded
once per level and shared by every parent that points at the same rows, so a small query
(aliases times nested relationships back and forth) can describe a response of millions of
objects from a few hundred rows: cheap to load, and hundreds of megabytes to encode.

The budget counts what the response will hold, nested relationships expanded: each row
object (a root row, an object or array relationship's row, an aggregate's `nodes` row)
counts one, an aggregate object one. Levels are shaped bottom-up (`sql.selects`), so a
level's expanded size is known before its parents are built; a level that alone would
overrun what is left is refused at once, so neither memory nor encoding time grows
past the limit. Root fields charge their totals as they finish.

One budget covers one HTTP request (all operations of a batch share it) or one
operation otherwise (a WebSocket operation, each run of a live query): the transport
opens it with `budget_scope`, and `GraphQLEngine.compile_context` hands it to the SQL
layer through `CompileContext.budget`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from service.graphql.errors import validation_failed


class ResponseBudget:
    """Row objects a request may still produce; refuses what would overrun `limit`.

    Not locked: a request's root fields run as tasks of one event loop, and each check
    and charge happens between two awaits.
    """

    __slots__ = ("_counts", "limit", "pending", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        """Nodes counted exactly."""
        self.pending = 0
        """Upper bounds of answers charged with `charge_at_most`, not counted yet."""
        self._counts: list[Callable[[], int]] = []

    def check(self, nodes: int, path: str) -> None:
        """Raise `EngineError` (validation-failed) if `nodes` more would overrun the budget."""
        if self.used + self.pending + nodes > self.limit:
            self._count_pending()
        if self.used + nodes > self.limit:
            raise validation_failed(
                f"the response would hold more than {self.limit} rows and objects (nested "
                "relationships, aliases and batched operations count together); ask for "
                "fewer with 'limit' or 'where', or raise the server's max_response_nodes "
                "setting",
                path,
            )

    def charge(self, nodes: int, path: str) -> None:
        """Count `nodes` against the budget (raising as `check` does when they overrun it)."""
        self.check(nodes, path)
        self.used += nodes

    def charge_at_most(self, bound: int, count: Callable[[], int], path: str) -> None:
        """Charge an answer known to hold at most `bound` nodes, whose exact number
        `count()` tells at a cost (parsing a compiled answer): it is counted only when the
        bounds would overrun the budget, so the budget stays exact and cheap."""
        if self.used + self.pending + bound <= self.limit:
            self.pending += bound
            self._counts.append(count)
            return
        self.charge(count(), path)

    def _count_pending(self) -> None:
        for count in self._counts:
            self.used += count()
        self._counts.clear()
        self.pending = 0


current_budget: ContextVar[ResponseBudget | None] = ContextVar("response_budget", default=None)
"""The budget of the request being executed (None: no budget is open)."""


@contextlib.contextmanager
def budget_scope(limit: int | None, *, inherit: bool = True) -> Iterator[ResponseBudget | None]:
    """Open a budget of `limit` nodes for what runs inside, unless one is open already.

    An HTTP request opens one for all its operations; the per-operation scope inside it
    then keeps that one. `inherit=False` opens a new one regardless (a live query's run,
    whose task may have been started inside a subscriber's operation). `limit` None
    opens none.
    """
    opened = current_budget.get()
    if limit is None or (opened is not None and inherit):
        yield opened
        return
    budget = ResponseBudget(limit)
    token = current_budget.set(budget)
    try:
        yield budget
    finally:
        # Closed from another context (a subscription torn down by its connection's
        # task), the reset fails: that context never saw this budget anyway.
        with contextlib.suppress(ValueError):
            current_budget.reset(token)
