"""A background task that dies of a bug takes its service down non-zero (so Kubernetes
restarts it and the bug shows), through the same graceful shutdown as a SIGTERM."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from services.devtools.broker import free_port

SERVICE = textwrap.dedent(
    """
    import asyncio, sys
    from aiohttp import web
    from services.common.observability import (
        ACCESS_LOG_CLASS, FAILURES, REGISTRY, HttpMetrics, serve, stop_if_it_fails,
    )
    from prometheus_client import CollectorRegistry

    async def buggy() -> None:
        await asyncio.sleep(0.3)
        raise TypeError("unsupported operand type(s) for +: 'int' and 'NoneType'")

    async def task_ctx(app):
        task = asyncio.create_task(buggy(), name="consumer")
        stop_if_it_fails(app, task)
        yield
        print("cleanup ran", flush=True)

    app = web.Application()
    registry = CollectorRegistry()
    app[REGISTRY] = registry
    app[ACCESS_LOG_CLASS] = HttpMetrics(registry).access_logger()
    app[FAILURES] = []
    app.cleanup_ctx.append(task_ctx)
    serve(app, "127.0.0.1", int(sys.argv[1]), shutdown_timeout=1)
    """
)


def test_a_failed_background_task_stops_the_service_non_zero() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SERVICE, str(free_port())],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1, done.stderr
    assert "cleanup ran" in done.stdout  # the graceful path: cleanup contexts ran
    assert "background task consumer failed" in done.stderr
    assert "TypeError" in done.stderr
