from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from services.devtools.broker import LocalBroker, free_port
from services.devtools.postgres import LocalPostgres
from tests.factories import gateway_settings_values


def settings_env(values: Mapping[str, object]) -> dict[str, str]:
    """Settings as the environment variables a deployment would set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "KAFKA_"))}
    for name, value in values.items():
        env[name.upper()] = ",".join(value) if isinstance(value, list) else str(value)
    return env


class ServiceProcess:
    def __init__(
        self, args: list[str], env: Mapping[str, str], log: Path, cwd: Path | None = None
    ) -> None:
        self.log = log
        self._log_file = log.open("wb")
        self._terminated = False
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args],
            env=dict(env),
            cwd=cwd,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(
        self, url: str, timeout_s: float = 30.0, marker: bytes = b'"broker": true'
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"exited {self.process.returncode}: {self.log.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200 and marker in response.read():
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{url} never ready: {self.log.read_text()}")

    def terminate(self) -> None:
        """One SIGTERM, as Kubernetes sends; a second would interrupt the graceful shutdown."""
        if not self._terminated and self.process.poll() is None:
            self._terminated = True
            self.process.terminate()

    def stop(self) -> int:
        self.terminate()
        try:
            code = self.process.wait(timeout=30)
        finally:
            self._log_file.close()
        return code


def dev_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    """The environment of ``calltrail dev`` on a machine with none of calltrail's settings: no
    Twilio, broker, kintone or gateway of one's own, only its database."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TWILIO_", "KAFKA_", "CALLTRAIL_", "KINTONE_", "PUBLIC_", "GATEWAY_"))
    }
    env["GATEWAY_SPOOL_PATH"] = str(tmp_path / "spool.sqlite3")
    env["DATABASE_URL"] = database_url
    return env


@pytest.fixture
def empty_database(postgres: LocalPostgres) -> Iterator[str]:
    """A database of the test's own, unmigrated: `calltrail dev` migrates it. (Without
    DATABASE_URL dev would use the machine's shared `calltrail` database, which another
    checkout may have migrated further.)"""
    name = f"calltrail_dev_{uuid.uuid4().hex[:10]}"
    yield postgres.create_database(name)
    postgres.drop_database(name)


def start_gateway(
    bootstrap: str, topic: str, tmp_path: Path, **overrides: object
) -> tuple[ServiceProcess, str]:
    """The gateway process, ready (broker connected); returns it and its base URL."""
    port = free_port()
    env = settings_env(
        gateway_settings_values(
            kafka_bootstrap=bootstrap,
            kafka_topic=topic,
            gateway_host="127.0.0.1",
            gateway_port=port,
            gateway_spool_path=tmp_path / "spool.sqlite3",
            **overrides,
        )
    )
    service = ServiceProcess(["gateway"], env, tmp_path / "gateway.log")
    base = f"http://127.0.0.1:{port}"
    try:
        service.wait_ready(f"{base}/readyz")
    except BaseException:
        service.stop()
        raise
    return service, base


@pytest.fixture
def gateway_process(
    kafka_broker: LocalBroker, topic: str, tmp_path: Path
) -> Iterator[tuple[ServiceProcess, str]]:
    service, base = start_gateway(kafka_broker.bootstrap, topic, tmp_path)
    try:
        yield service, base
    finally:
        service.stop()


def recorder_env(bootstrap: str, topic: str, database_url: str, port: int) -> dict[str, str]:
    return settings_env(
        {
            "kafka_bootstrap": bootstrap,
            "kafka_idempotence": False,
            "kafka_topic": topic,
            "database_url": database_url,
            "recorder_group": f"{topic}.recorder",
            "recorder_host": "127.0.0.1",
            "recorder_port": port,
            "twilio_caller_id": "+815012345678",
        }
    )


def subtable_writeback_env(
    kintone_base_url: str, token: str = "token-customers", **more: str
) -> dict[str, str]:
    """The settings of kintone write-back in subtable mode, written at once (no delay)."""
    return {
        "KINTONE_WRITEBACK": "subtable",
        "KINTONE_BASE_URL": kintone_base_url,
        "KINTONE_API_TOKEN": token,
        "KINTONE_WRITEBACK_DELAY_S": "0",
        **more,
    }


def start_recorder(env: dict[str, str], log: Path) -> ServiceProcess:
    service = ServiceProcess(["recorder"], env, log)
    service.wait_ready(
        f"http://127.0.0.1:{env['RECORDER_PORT']}/readyz", marker=b'"status": "ready"'
    )
    return service
