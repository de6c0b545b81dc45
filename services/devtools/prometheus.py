"""A local Prometheus: Debian's ``prometheus`` binary (``make prometheus`` installs it) on a
free port with a throwaway data directory, scraping the services under their Kubernetes job
names (calltrail-gateway, calltrail-recorder) and evaluating a rule file.

Used by the end-to-end alert tests: scrape and evaluation every second, so an alert's ``for``
of a few seconds is seen in a few seconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML (with yamllint, the test extra): no types

from services.devtools.broker import free_port


class LocalPrometheus:
    def __init__(
        self,
        workdir: Path,
        targets: Mapping[str, Sequence[str]],
        rule_file: Path,
        *,
        interval_s: int = 1,
    ) -> None:
        """``targets``: job name → ``host:port`` addresses; ``rule_file``: loaded as is."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._workdir = workdir
        self._targets = targets
        self._rule_file = rule_file
        self._interval = f"{interval_s}s"
        self._process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "prometheus.log"

    def start(self, timeout_s: float = 30.0) -> LocalPrometheus:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus not found: `make prometheus` installs Debian's package")
        config = {
            "global": {
                "scrape_interval": self._interval,
                "scrape_timeout": self._interval,
                "evaluation_interval": self._interval,
            },
            "rule_files": [str(self._rule_file)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": list(addresses)}]}
                for job, addresses in self._targets.items()
            ],
        }
        config_file = self._workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - a fixed binary, our own arguments
                [
                    binary,
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={self._workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prometheus not ready in {timeout_s}s")
            time.sleep(0.1)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> LocalPrometheus:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def api(self, path: str, **params: str) -> Any:
        """``GET /api/v1/<path>``: its ``data``, or an error naming what Prometheus said."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        request = f"{self.url}/api/v1/{path}{query}"
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def alerts(self) -> list[dict[str, Any]]:
        """The active alerts (pending or firing), as ``/api/v1/alerts`` lists them."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result (a vector's series, or a scalar as one)."""
        data = self.api("query", query=promql)
        if data["resultType"] == "vector":
            series: list[dict[str, Any]] = data["result"]
            return series
        return [{"metric": {}, "value": data["result"]}]
