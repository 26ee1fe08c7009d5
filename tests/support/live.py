"""Helpers for live-subscription tests: real clients against a real server.

- `subscribed(...)`: a `gql` subscription (either protocol) whose results are read in the
  background into a queue, so a test can wait for the next one or check that nothing
  arrived, without cancelling the client's generator;
- `RawSocket`: a bare `websockets` connection speaking JSON frames, for protocol edge
  cases;
- `insert_rows(...)`: a write through a connection of the test's own;
- `run_detector_process(...)`: the detector with an ObservabilityPlugin in another OS
  process, writing straight to the database;
- `wait_until(...)`: poll a condition with a generous deadline (the machine is shared).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import websockets
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport
from sqlalchemy.ext.asyncio import create_async_engine

from detector.observability.models import POSTGRES_SCHEMA, metadata
from tests.support.db import async_url

REPO_ROOT = Path(__file__).resolve().parents[2]
LEGACY = WebsocketsTransport.APOLLO_SUBPROTOCOL  # "graphql-ws"
TRANSPORT_WS = WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL  # "graphql-transport-ws"
PROTOCOLS = (LEGACY, TRANSPORT_WS)


class Subscription:
    """Results of one running subscription, buffered as they arrive."""

    def __init__(self, results: AsyncIterator[dict[str, Any]]) -> None:
        self._results = results
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for result in self._results:
                self._queue.put_nowait(result)
        except Exception as error:  # surfaced by next()
            self._queue.put_nowait(error)

    async def next(self, seconds: float = 15.0) -> dict[str, Any]:
        """The next result; raises what the client raised (e.g. TransportQueryError)."""
        item = await asyncio.wait_for(self._queue.get(), seconds)
        if isinstance(item, Exception):
            raise item
        return item

    async def until(
        self, condition: Callable[[dict[str, Any]], bool], seconds: float = 15.0
    ) -> dict[str, Any]:
        """The first result (from now on) for which `condition` holds."""
        deadline = time.monotonic() + seconds
        while True:
            result = await self.next(max(deadline - time.monotonic(), 0.01))
            if condition(result):
                return result

    def pending(self) -> int:
        """Results received and not read yet."""
        return self._queue.qsize()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task
        with contextlib.suppress(Exception):
            await self._results.aclose()  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def subscribed(
    url: str,
    query: str,
    variables: Mapping[str, Any] | None = None,
    *,
    protocol: str = TRANSPORT_WS,
    headers: Mapping[str, str] | None = None,
) -> AsyncIterator[Subscription]:
    """A `gql` subscription over `protocol`; headers go in connection_init's payload."""
    transport = WebsocketsTransport(
        url=url,
        subprotocols=[protocol],
        init_payload={"headers": dict(headers)} if headers else {},
        close_timeout=2,
    )
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:
        results = session.subscribe(
            GraphQLRequest(query, variable_values=dict(variables) if variables else None)
        )
        subscription = Subscription(results)
        try:
            yield subscription
        finally:
            await subscription.close()


class RawSocket:
    """A bare WebSocket client exchanging JSON frames (protocol edge cases)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, url: str, subprotocols: list[str] | None = None
    ) -> AsyncIterator[RawSocket]:
        async with websockets.connect(
            url, subprotocols=subprotocols or None, open_timeout=10, close_timeout=2
        ) as connection:
            yield cls(connection)

    @property
    def subprotocol(self) -> str | None:
        return self.connection.subprotocol

    async def send(self, message: Any) -> None:
        await self.connection.send(message if isinstance(message, str) else json.dumps(message))

    async def receive(self, seconds: float = 10.0, *, skip_ka: bool = True) -> dict[str, Any]:
        """The next frame (keep-alives skipped unless asked for)."""
        deadline = time.monotonic() + seconds
        while True:
            text = await asyncio.wait_for(
                self.connection.recv(), max(deadline - time.monotonic(), 0.01)
            )
            frame = json.loads(text)
            if skip_ka and frame.get("type") == "ka":
                continue
            return frame

    async def closed_with(self, seconds: float = 10.0) -> tuple[int | None, str]:
        """Wait until the server closes the socket; its close code and reason."""
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(self.connection.recv(), seconds)
        return self.connection.close_code, self.connection.close_reason or ""

    async def init(self, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """connection_init (headers in the payload); returns the answer."""
        payload: dict[str, Any] = {"headers": dict(headers)} if headers else {}
        await self.send({"type": "connection_init", "payload": payload})
        return await self.receive()


async def insert_rows(url: str, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` through a connection of the test's own (not the service's)."""
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as conn:
            if not url.startswith("sqlite"):
                conn = await conn.execution_options(schema_translate_map={None: POSTGRES_SCHEMA})
            await conn.execute(sa.insert(metadata.tables[table]), rows)
    finally:
        await engine.dispose()


async def run_detector_process(
    url: str, function: str, invocations: int = 1, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Run `tests.support.detector_process` in a new interpreter (with `environ` added to
    this process's environment); the invocation ids."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.detector_process",
        url,
        function,
        str(invocations),
        cwd=REPO_ROOT,
        env={**os.environ, **(environ or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode().split()


async def wait_until(
    condition: Callable[[], bool], seconds: float = 15.0, interval: float = 0.02
) -> None:
    """Return once `condition()` holds; fail (AssertionError) after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)
