"""Run the Alembic migrations (``calltrail migrate``).

They live in the repository's top-level ``migrations/`` folder, which the package installs as
``services.recorder.migrations`` (pyproject.toml maps it): an installed calltrail finds them
through its own package, from any working directory, in the image as in a clone.
"""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config

MIGRATIONS_PACKAGE = "services.recorder.migrations"


def script_location() -> str:
    return str(files(MIGRATIONS_PACKAGE))


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", script_location())
    # Not sqlalchemy.url (env.py builds the engine); %% because Alembic interpolates options.
    config.set_main_option("database_url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
