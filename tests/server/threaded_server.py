"""An app served from a background thread, for synchronous clients (hypothesis, schemathesis)."""

import asyncio
import threading
from contextlib import contextmanager
from typing import Iterator, Optional, Text

from sanic import Sanic

from tests.channels.webhook_harness import serve_app

START_TIMEOUT_S = 30.0


@contextmanager
def app_in_thread(app: Sanic) -> Iterator[Text]:
    """Serves `app` on 127.0.0.1 from its own event loop; yields the base URL."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop: Optional[asyncio.Event] = None
    url: Text = ""
    failure: Optional[BaseException] = None

    async def serve() -> None:
        nonlocal stop, url
        stop = asyncio.Event()
        async with serve_app(app) as base_url:
            url = base_url
            started.set()
            await stop.wait()

    def run() -> None:
        nonlocal failure
        try:
            loop.run_until_complete(serve())
        except BaseException as error:  # reported to the test below
            failure = error
        finally:
            started.set()
            # Keep-alive connections still have tasks; end them before the loop closes.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(START_TIMEOUT_S)
    if failure is not None or not url:
        raise RuntimeError("the app did not start") from failure
    try:
        yield url
    finally:
        loop.call_soon_threadsafe(stop.set)  # type: ignore[union-attr]
        thread.join(START_TIMEOUT_S)
