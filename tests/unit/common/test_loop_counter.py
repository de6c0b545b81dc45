"""LoopCounter counts with plain numbers and exposes them when scraped: what Prometheus reads
must be exactly what prometheus_client's own Counter would have exposed."""

from __future__ import annotations

import enum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, generate_latest

from services.common.observability import LoopCounter


class Outcome(enum.StrEnum):
    BROKER = "broker"
    SPOOL = "spool"


_labels = st.sampled_from(["completed", "no-answer", 'quo"te', "back\\slash", Outcome.BROKER])
_amounts = st.sampled_from([1.0, 0.0, 2.5]) | st.floats(min_value=0, max_value=1e9)


def _without_created(exposition: bytes) -> list[bytes]:
    return sorted(line for line in exposition.splitlines() if b"_created" not in line)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_labels, _labels, _amounts), max_size=30))
def test_labelled_exposition_is_prometheus_clients(
    incs: list[tuple[str, str, float]],
) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    counter = LoopCounter("calltrail_x_total", "X by a and b.", ["a", "b"], registry=ours)
    reference = Counter("calltrail_x_total", "X by a and b.", ["a", "b"], registry=theirs)
    for a, b, amount in incs:
        counter.labels(a, b).inc(amount)
        reference.labels(a, b).inc(amount)
    assert _without_created(generate_latest(ours)) == _without_created(generate_latest(theirs))


@settings(max_examples=50, deadline=None)
@given(st.lists(_amounts, max_size=10))
def test_unlabelled_exposition_is_prometheus_clients(amounts: list[float]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    counter = LoopCounter("calltrail_y", "Y.", registry=ours)  # "_total" is optional
    reference = Counter("calltrail_y", "Y.", registry=theirs)
    for amount in amounts:
        counter.inc(amount)
        reference.inc(amount)
    assert _without_created(generate_latest(ours)) == _without_created(generate_latest(theirs))


def test_a_bound_series_is_the_one_labels_answers() -> None:
    counter = LoopCounter("calltrail_z_total", "Z.", ["outcome"], registry=CollectorRegistry())
    bound = counter.labels(Outcome.BROKER)
    bound.inc()
    counter.labels("broker").inc()  # a StrEnum's label is its str, as in prometheus_client
    assert bound is counter.labels("broker")
    assert bound.value == 2


def test_refuses_what_prometheus_client_refuses() -> None:
    registry = CollectorRegistry()
    labelled = LoopCounter("calltrail_l_total", "L.", ["a"], registry=registry)
    unlabelled = LoopCounter("calltrail_u_total", "U.", registry=registry)
    with pytest.raises(ValueError, match="expected labels"):
        labelled.labels("1", "2")
    with pytest.raises(ValueError, match="expected labels"):
        unlabelled.labels("1")
    with pytest.raises(ValueError, match="counted by labels"):
        labelled.inc()
    with pytest.raises(ValueError, match="only goes up"):
        unlabelled.inc(-1)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        LoopCounter("calltrail_l_total", "L again.", registry=registry)
