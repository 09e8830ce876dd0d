"""Property: whatever the interleaving of creates, edits, deletes, cycles, captures between a
create and its retry, injected faults (5xx and fail-after-commit on every vendor) and
processes killed between the vendors' commits and their bookkeeping, once faults stop the
systems converge — verify is clean (it counts duplicates from the vendors' side too), no deal
exists twice anywhere, and the last edit of every deal is what every system holds."""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sync.connectors.errors import ConnectorError
from sync.engine.cycle import poll
from tests.e2e.conftest import World, make_world
from tests.e2e.test_scenarios import SYSTEMS, count_named, link_of, name_of, record_of

pytestmark = pytest.mark.slow

ops = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.sampled_from(SYSTEMS)),
        st.tuples(st.just("rename"), st.sampled_from(SYSTEMS), st.integers(0, 5)),
        st.tuples(st.just("delete"), st.sampled_from(SYSTEMS), st.integers(0, 5)),
        st.tuples(st.just("cycle")),
        st.tuples(st.just("faults"), st.sampled_from(SYSTEMS), st.sampled_from([0.0, 0.3, 1.0])),
        # one system read alone: it may meet a deal whose create answer was lost before the
        # create's retry does (retries wait until "wait")
        st.tuples(st.just("capture"), st.sampled_from(SYSTEMS)),
        st.tuples(st.just("crash"), st.sampled_from(SYSTEMS)),
        st.tuples(st.just("wait")),
    ),
    min_size=3,
    max_size=16,
)
counter = itertools.count()


def _rename(world: World, system: str, deal: str, name: str) -> None:
    close_key = f"custom.{name_of.__globals__['CLOSE_NAME']}"
    key = {"close": close_key, "hubspot": "dealname"}.get(system, "name")
    world.users[system].edit(deal, **{key: name})


def _linked_id(world: World, origin: str, deal: str, system: str) -> str | None:
    try:
        record = record_of(world, origin, deal)
        link = link_of(world, system, record)
    except Exception:  # not captured / not linked yet
        return None
    return None if link.deleted_at else link.external_id


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    derandomize=True,
)
@given(steps=ops, last_system=st.sampled_from(SYSTEMS))
def test_random_interleavings_converge(
    tmp_path_factory: Any, steps: list[Any], last_system: str
) -> None:
    """After faults stop: no drift, no duplicate, and the last rename is everywhere."""
    world = make_world(Path(tmp_path_factory.mktemp("prop")))
    world.engine.backoff_base = 3600.0  # a failed push waits for a "wait" step
    deals: list[tuple[str, str, str]] = []  # (origin system, vendor id, current name)
    deleted: set[int] = set()
    rates: dict[str, float] = {}
    try:
        for step in steps:
            kind = step[0]
            if kind == "create":
                name = f"Deal {next(counter)}"
                deals.append((step[1], world.users[step[1]].create(name), name))
            elif kind == "cycle":
                # faults hit crmsync only: the people editing deals meanwhile are not our code
                for system, rate in rates.items():
                    world.faults(system, error_rate=rate, fail_after_commit_rate=rate)
                world.cycle()
                for system in rates:
                    world.faults(system)
            elif kind == "capture":
                with contextlib.suppress(ConnectorError):
                    poll(world.engine, step[1])
            elif kind == "crash":
                for system, rate in rates.items():
                    world.faults(system, error_rate=rate, fail_after_commit_rate=rate)
                world.crash_mid_push(step[1])
                world.engine.backoff_base = 3600.0
                for system in rates:
                    world.faults(system)
            elif kind == "wait":
                world.time_passes()
                world.engine.backoff_base = 3600.0
            elif kind == "faults":
                rates[step[1]] = step[2]
            elif deals and (index := step[2] % len(deals)) not in deleted:
                origin, deal, _ = deals[index]
                target = _linked_id(world, origin, deal, step[1]) if step[1] != origin else deal
                if target is None:
                    continue
                if kind == "rename":
                    name = f"Renamed {next(counter)}"
                    _rename(world, step[1], target, name)
                    deals[index] = (origin, deal, name)
                elif step[1] == origin:  # delete where it was made (unlink: stays elsewhere)
                    world.users[origin].delete(deal)
                    deleted.add(index)
        for system in SYSTEMS:
            world.faults(system)
        world.time_passes()
        report = world.converge(cycles=3)
        assert report.clean, report
        live = [(i, d) for i, d in enumerate(deals) if i not in deleted]
        if live:  # one last edit, made after the faults stopped, reaches every system
            index, (origin, deal, _) = live[-1]
            target = _linked_id(world, origin, deal, last_system) or deal
            system = last_system if target != deal else origin
            name = f"Final {next(counter)}"
            _rename(world, system, target, name)
            deals[index] = (origin, deal, name)
            assert world.converge(cycles=2).clean
        for index, (_origin, _deal, name) in enumerate(deals):
            if index in deleted:
                continue
            for system in SYSTEMS:
                assert count_named(world, system, name) == 1, (system, name)
    finally:
        world.engine.close()
