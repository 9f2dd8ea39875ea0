"""A started process keeps what it built out of the garbage collector's walk."""

from __future__ import annotations

import gc
from typing import Any

from api import memory


def test_a_started_process_hides_what_it_built_from_the_garbage_collector(client: Any) -> None:
    """The app's startup (`api.memory.settle`) moves the objects a worker holds for its
    whole life out of the cyclic collector's walk, and raises its thresholds: full
    collections had walked them all, 110 ms each, inside requests."""
    assert gc.get_freeze_count() > 50_000  # modules, routes, schemas, tables
    assert gc.get_threshold() == memory.THRESHOLDS
