"""The gateway process keeps its startup objects out of the collector and collects the young
generation less often (services/gateway/app.py, tune_gc)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from services.gateway import app


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restore_gc")
def test_startup_objects_are_frozen_and_young_collections_are_rarer() -> None:
    long_lived = [object() for _ in range(10)]
    _young, middle, old = gc.get_threshold()
    app.tune_gc()
    assert gc.get_freeze_count() >= len(long_lived)
    assert gc.get_threshold() == (app.GC_YOUNG_THRESHOLD, middle, old)
    # Cyclic garbage made after startup is still collected.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
