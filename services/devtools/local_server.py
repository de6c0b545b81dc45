"""An aiohttp application served on 127.0.0.1 inside the caller's event loop: how the stand-ins
(kintone, Twilio's REST API) run in tests and benchmarks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

from aiohttp import web


class LocalServer:
    """Serve an application on ``host`` at ``port`` (0: a free port, read back once started)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    def make_app(self) -> web.Application:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> Self:
        self._runner = web.AppRunner(self.make_app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()


def serve_until_stopped(
    description: str, make_app: Callable[[], web.Application], argv: list[str] | None = None
) -> None:
    """A stand-in as a process of its own (``--port P``, ``--host``), as ``calltrail dev``
    starts them, until SIGINT/SIGTERM."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    web.run_app(make_app(), host=args.host, port=args.port, print=None, access_log=None)
