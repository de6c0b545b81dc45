"""The kintone stand-in in your own browser, to try the plugin's setup before a real kintone:

    make plugin
    .venv/bin/python -m tests.plugin.harness --gateway http://127.0.0.1:8080

It serves one customer app with the plugin added but not yet set up (as kintone has it after
"Add plug-in"), prints its settings page and its record page, and runs until Ctrl-C. kintone's
server side (the plugin's settings, the proxy config holding the key) stays in this process, as
it stays on kintone's servers. The Voice SDK is its stand-in: Twilio is not reached, no phone
rings. The README's "Try the three steps locally first" follows it, and
tests/plugin/test_readme_setup.py follows the README.
"""

from __future__ import annotations

import argparse
import json
import threading
import zipfile
from pathlib import Path

from tests.plugin.harness.server import KintoneHarness, Tenant, plugin_files, plugin_id_of

ROOT = Path(__file__).resolve().parents[3]
ZIP = ROOT / "plugin" / "dist" / "calltrail.zip"
DEMO_TENANT = "demo"


def start(zip_path: Path = ZIP, port: int = 0) -> tuple[KintoneHarness, Tenant]:
    """The harness with one app whose plugin is added but not set up."""
    if not zip_path.exists():
        raise SystemExit(f"{zip_path} is missing: run `make plugin` first")
    manifest = json.loads(plugin_files(zip_path)["manifest.json"])
    with zipfile.ZipFile(zip_path) as package:
        plugin_id = plugin_id_of(package.read("PUBKEY"))
    harness = KintoneHarness(zip_path, manifest["config"]["required_params"], port=port).start()
    return harness, harness.new_tenant(plugin_id, tenant_id=DEMO_TENANT)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the kintone stand-in, to try the plugin")
    parser.add_argument("--gateway", required=True, help="the gateway, e.g. http://127.0.0.1:8080")
    parser.add_argument("--port", type=int, default=8088, help="where the stand-in listens")
    parser.add_argument("--zip", type=Path, default=ZIP, help="the plugin `make plugin` built")
    args = parser.parse_args(argv)
    harness, tenant = start(args.zip, args.port)
    gateway = args.gateway.rstrip("/")
    print(
        "kintone stand-in is running (Ctrl-C stops it)\n"
        f"  1. settings page  {harness.url(tenant, 'config')}\n"
        f"     token URL {gateway}/token, the key, phone number field 電話番号; save\n"
        f"  2. record page    {harness.url(tenant, 'record')}\n"
        f"     (the customer list, where incoming calls ring: {harness.url(tenant, 'index')})",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        harness.stop()


if __name__ == "__main__":
    main()
