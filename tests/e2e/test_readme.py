"""The README's "Try it" block, run as written against a running ``calltrail dev``."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from services.devtools.broker import free_port
from tests.e2e.conftest import dev_env

ROOT = Path(__file__).resolve().parents[2]


def try_it_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Try it", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, "README has no sh block under 'Try it'"
    return match.group(1)


def test_readme_curl_examples_work(tmp_path: Path, empty_database: str) -> None:
    port = free_port()
    env = dev_env(tmp_path, empty_database)
    calltrail = Path(sys.executable).parent / "calltrail"
    dev = subprocess.Popen(
        [str(calltrail), "dev", "--gateway-port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert dev.poll() is None, dev.stdout.read() if dev.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    if b'"broker": true' in r.read():
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "calltrail dev never became ready"
            time.sleep(0.2)

        script = try_it_block().replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        script = script.replace(".venv/bin/calltrail", str(calltrail))
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        assert '"token":' in out
        assert "<Dial" in out
        assert "+819012345678</Number>" in out
        assert "\n204\n" in out
        assert '"status": "ready"' in out
        assert 'calltrail_events_published_total{outcome="broker"} 2.0' in out
    finally:
        dev.terminate()
        output, _ = dev.communicate(timeout=60)
    assert dev.returncode == 0, output
    assert "calltrail dev stopped" in output
