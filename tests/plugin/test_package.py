"""The signed plugin zip, as kintone receives it: layout, signature, manifest, contents."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.plugin.conftest import PLUGIN
from tests.plugin.harness.server import plugin_id_of
from tests.plugin.values import TOKEN_KEY

# Node's crypto (OpenSSL) checks the signature; Cybozu's validator checks the manifest.
VERIFY_JS = """
const { createRequire } = require('node:module');
const crypto = require('node:crypto');
const req = createRequire(process.cwd() + '/package.json');
const validate = req('@kintone/plugin-manifest-validator');
const input = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
const b = (s) => Buffer.from(s, 'base64');
const key = crypto.createPublicKey({ key: b(input.pubkey), format: 'der', type: 'spki' });
const signatureValid = crypto.verify('sha1', b(input.contents), key, b(input.signature));
const tampered = Buffer.from(b(input.contents)); tampered[tampered.length - 1] ^= 1;
const tamperedValid = crypto.verify('sha1', tampered, key, b(input.signature));
const result = (validate.default ?? validate)(input.manifest, {
  relativePath: () => true,
  fileExists: (p) => input.files.includes(p),
  maxFileSize: (max, p) => (input.sizes[p] ?? Infinity) <= max,
});
const keyBits = key.asymmetricKeyDetails.modulusLength;
console.log(JSON.stringify({ signatureValid, tamperedValid, keyBits,
  manifestValid: result.valid, errors: result.errors }));
"""


@pytest.fixture(scope="module")
def package(plugin_zip: Path) -> dict[str, Any]:
    with zipfile.ZipFile(plugin_zip) as outer:
        names = outer.namelist()
        parts = {name: outer.read(name) for name in names}
    with zipfile.ZipFile(io.BytesIO(parts["contents.zip"])) as inner:
        files = {name: inner.read(name) for name in inner.namelist()}
    manifest = json.loads(files["manifest.json"])
    checked = subprocess.run(
        ["node", "-e", VERIFY_JS],
        cwd=PLUGIN,
        input=json.dumps(
            {
                "pubkey": base64.b64encode(parts["PUBKEY"]).decode(),
                "signature": base64.b64encode(parts["SIGNATURE"]).decode(),
                "contents": base64.b64encode(parts["contents.zip"]).decode(),
                "manifest": manifest,
                "files": list(files),
                "sizes": {name: len(body) for name, body in files.items()},
            }
        ),
        capture_output=True,
        text=True,
        check=True,
    )
    return {
        "names": names,
        "parts": parts,
        "files": files,
        "manifest": manifest,
        "checked": json.loads(checked.stdout),
    }


def referenced(manifest: dict[str, Any]) -> list[str]:
    paths = [manifest["icon"], manifest["config"]["html"]]
    for part in ("desktop", "mobile", "config"):
        for kind in ("js", "css"):
            paths += manifest.get(part, {}).get(kind, [])
    return paths


def test_zip_layout_is_the_packers(package: dict[str, Any]) -> None:
    assert sorted(package["names"]) == ["PUBKEY", "SIGNATURE", "contents.zip"]


def test_signature_verifies_against_pubkey(package: dict[str, Any]) -> None:
    assert package["checked"]["signatureValid"] is True
    assert package["checked"]["tamperedValid"] is False  # the check can fail
    assert package["checked"]["keyBits"] >= 1024


def test_plugin_id_is_stable(package: dict[str, Any], plugin_id: str) -> None:
    """Derived from the key alone: the same key, the same id, on every build."""
    assert re.fullmatch(r"[a-p]{32}", plugin_id)
    assert plugin_id_of(package["parts"]["PUBKEY"]) == plugin_id
    configured = os.environ.get("CALLTRAIL_PLUGIN_PPK")
    key = Path(configured) if configured else PLUGIN / ".keys" / "calltrail-dev.ppk"
    if key.exists():  # the key it was signed with: CALLTRAIL_PLUGIN_PPK, else the dev key
        derived = subprocess.run(
            [
                "node",
                "-e",
                "const c=require('node:crypto');"
                "process.stdout.write(c.createPublicKey(require('node:fs').readFileSync(0))"
                ".export({type:'spki',format:'der'}).toString('base64'))",
            ],
            input=key.read_bytes(),
            capture_output=True,
            check=True,
        ).stdout
        assert base64.b64decode(derived) == package["parts"]["PUBKEY"]


def test_manifest_passes_cybozus_validator(package: dict[str, Any]) -> None:
    assert package["checked"]["manifestValid"] is True, package["checked"]["errors"]
    manifest = package["manifest"]
    assert manifest["manifest_version"] == 1
    assert manifest["type"] == "APP"
    assert set(manifest["name"]) >= {"ja", "en"}
    assert set(manifest["description"]) >= {"ja", "en"}
    assert {"tokenUrl", "phoneField"} <= set(manifest["config"]["required_params"])


def test_every_referenced_file_is_inside_and_nothing_else(package: dict[str, Any]) -> None:
    files = package["files"]
    paths = referenced(package["manifest"])
    assert set(paths) | {"manifest.json"} == set(files)
    assert files[package["manifest"]["icon"]].startswith(b"\x89PNG\r\n\x1a\n")


def test_the_sdk_is_shipped_unmodified_and_first(package: dict[str, Any]) -> None:
    manifest = package["manifest"]
    assert manifest["desktop"]["js"][0] == "js/twilio.min.js"
    assert manifest["mobile"]["js"][0] == "js/twilio.min.js"
    sdk = PLUGIN / "node_modules" / "@twilio" / "voice-sdk"
    assert package["files"]["js/twilio.min.js"] == (sdk / "dist" / "twilio.min.js").read_bytes()
    version = json.loads((sdk / "package.json").read_text())["version"]
    assert version.startswith("2.")
    lock = json.loads((PLUGIN / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/@twilio/voice-sdk"]["version"] == version
    pinned = json.loads((PLUGIN / "package.json").read_text())["dependencies"]["@twilio/voice-sdk"]
    assert pinned == version  # pinned exactly


def test_nothing_secret_inside(package: dict[str, Any]) -> None:
    for name, body in package["files"].items():
        assert not name.endswith((".ppk", ".pem", ".key")), name
        assert b"PRIVATE KEY" not in body, name
        assert TOKEN_KEY.encode() not in body, name
    key = PLUGIN / ".keys" / "calltrail-dev.ppk"
    if key.exists():
        der = "".join(key.read_text().splitlines()[1:-1])
        for body in package["files"].values():
            assert der[:64].encode() not in body


def test_own_script_is_small(package: dict[str, Any]) -> None:
    """The plugin's own scripts, without the SDK: under 30 KB minified each."""
    for name in ("js/desktop.js", "js/mobile.js", "js/config.js"):
        size = len(package["files"][name])
        print(f"\n{name}: {size / 1024:.1f} KB")
        assert size < 30 * 1024, name
