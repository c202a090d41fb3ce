"""The gateway's garbage-collector tuning: a larger young generation, startup objects frozen."""

import gc
from collections.abc import Iterator

import pytest

from gateway.app import tune_garbage_collector


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    gc.unfreeze()


@pytest.mark.usefixtures("restored_gc")
def test_the_young_generation_threshold_is_raised_and_startup_objects_frozen() -> None:
    """PULSE_GC_THRESHOLD sets the first threshold only; what exists at startup leaves the collector."""
    _, older, oldest = gc.get_threshold()
    tune_garbage_collector(10_000)
    assert gc.get_threshold() == (10_000, older, oldest)
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("restored_gc")
def test_zero_keeps_pythons_threshold() -> None:
    """0 leaves Python's own threshold alone."""
    before = gc.get_threshold()
    tune_garbage_collector(0)
    assert gc.get_threshold() == before
