"""A TCP proxy that injects network faults between a client and a server, for tests.

    with FaultProxy(("127.0.0.1", pg_port)) as proxy:
        url = f"postgresql://postgres@127.0.0.1:{proxy.port}/db"
        proxy.down()          # refuse new connections, cut open ones
        proxy.up()
        proxy.latency = 0.2   # data arrives 200 ms after it was sent, in each direction
        proxy.stall()         # accept and hold connections, forward nothing
        proxy.hold_replies()  # forward the client's data, hold the server's answers
        proxy.cut()           # close every open connection once (a dropped network)

It plays the part toxiproxy plays in other projects' fault tests, in-process: a thread
runs its own event loop; the switches are thread-safe and take effect for data that
arrives after they are set. Latency is a delay line: every chunk is forwarded `latency`
seconds after it arrived, chunks in flight overlap (as on a long network, not a slow one).
`connections` counts the client connections accepted; `round_trips` counts the times a
client sent data after the server had last spoken (or first): the round trips a
protocol made, as a network between them would feel them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType

from tests.support.pgserver import free_port

CHUNK = 65536


class FaultProxy:
    """Forwards 127.0.0.1:`port` to `target`, with switchable faults."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.latency = 0.0
        self.connections = 0
        self.round_trips = 0
        self._down = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self._thread: threading.Thread | None = None
        self._flowing: asyncio.Event | None = None
        self._replies_flowing: asyncio.Event | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> FaultProxy:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name=f"fault-proxy-{self.port}", daemon=True
        )
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self

    def close(self) -> None:
        loop = self._loop
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- faults ----------------------------------------------------------------------

    def down(self) -> None:
        """The server is gone: new connections are closed at once, open ones are cut."""
        self._down = True
        self.cut()

    def up(self) -> None:
        """Back to normal (latency is kept; set it to 0 separately)."""
        self._down = False
        self._call(self._flow)

    def stall(self) -> None:
        """Connections stay open but nothing is forwarded (a hung network or server)."""
        self._call(self._hold)

    def hold_replies(self) -> None:
        """The client's data still reaches the server; the server's answers are held (a
        commit the server makes while the client waits for word of it), on new
        connections too, until `up()`."""
        self._call(self._hold_replies)

    def cut(self) -> None:
        """Close every open connection now (the client sees a reset)."""
        self._call(self._cut_all)

    @property
    def is_down(self) -> bool:
        return self._down

    # -- internals -------------------------------------------------------------------

    def _call(self, function: object) -> None:
        loop = self._loop
        if loop is None:
            return
        done = threading.Event()

        def run() -> None:
            function()  # type: ignore[operator]
            done.set()

        loop.call_soon_threadsafe(run)
        done.wait(5)

    def _flow(self) -> None:
        assert self._flowing is not None and self._replies_flowing is not None
        self._flowing.set()
        self._replies_flowing.set()

    def _hold(self) -> None:
        assert self._flowing is not None
        self._flowing.clear()

    def _hold_replies(self) -> None:
        assert self._replies_flowing is not None
        self._replies_flowing.clear()

    def _cut_all(self) -> None:
        for writer in list(self._pipes):
            transport = writer.transport
            with contextlib.suppress(Exception):
                transport.abort()  # RST, as when a network path or a server dies
        self._pipes.clear()

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def serve() -> None:
            self._flowing = asyncio.Event()
            self._flowing.set()
            self._replies_flowing = asyncio.Event()
            self._replies_flowing.set()
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
            ready.set()

        loop.run_until_complete(serve())
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        self._cut_all()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _accept(self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter):
        self.connections += 1
        if self._down:
            client.transport.abort()
            return
        try:
            server_reader, server = await asyncio.open_connection(*self.target)
        except OSError:
            client.transport.abort()
            return
        self._pipes.update((client, server))
        # Who spoke last on this connection: a client speaking after the server (or
        # first) starts a round trip.
        turn = {"server_spoke": True}
        try:
            await asyncio.gather(
                self._pipe(client_reader, server, client, turn, from_client=True),
                self._pipe(server_reader, client, server, turn, from_client=False),
                return_exceptions=True,
            )
        except asyncio.CancelledError:
            pass  # closing the proxy; asyncio's accept callback must not see a cancelled task
        self._pipes.discard(client)
        self._pipes.discard(server)

    async def _pipe(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        other: asyncio.StreamWriter,
        turn: dict[str, bool],
        *,
        from_client: bool,
    ) -> None:
        """Forward one direction: chunks are read as they come and sent on once their
        delay has passed (a delay line), unless the flow is held."""
        assert self._flowing is not None and self._replies_flowing is not None
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def receive() -> None:
            try:
                while True:
                    data = await source.read(CHUNK)
                    if not data:
                        break
                    if from_client and turn["server_spoke"]:
                        self.round_trips += 1
                    turn["server_spoke"] = not from_client
                    queue.put_nowait((loop.time() + self.latency, data))
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                queue.put_nowait(None)

        receiving = asyncio.ensure_future(receive())
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                due, data = item
                await self._flowing.wait()
                if not from_client:
                    await self._replies_flowing.wait()
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if self._down or sink not in self._pipes:
                    break
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            receiving.cancel()
            for writer in (sink, other):
                with contextlib.suppress(Exception):
                    writer.transport.abort()
