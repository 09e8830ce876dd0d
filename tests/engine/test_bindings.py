"""``engine.bindings``: what a mapping change does to the links of that system before its
next capture (the binding and hold rules: ``test_operator_changes``)."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from sync.engine import bindings
from sync.store.models import Link
from tests.e2e.conftest import World, make_world
from tests.e2e.test_operator_changes import reconfigure


def test_a_changed_field_mapping_leaves_every_shadow_of_that_system(tmp_path: Path) -> None:
    """ParsaLink's description mapping changed: before ParsaLink's next capture, every
    ParsaLink link forgets the description it last read and its stamps (the capture reads
    every deal again, with no base for that field); its other fields, and other systems'
    links, keep theirs. Then the cycles converge clean."""
    world = make_world(tmp_path, seed_opportunities=10)
    try:
        assert world.converge(cycles=2).clean
        before = shadows(world)
        assert sum("description" in shadow for (system, _), shadow in before.items()) > 10
        changed = world.config.model_copy(deep=True)
        spec = changed.mapping["parsalink"].description
        assert spec is not None
        changed.mapping["parsalink"].description = spec.model_copy(update={"default": "-"})
        reconfigure(world, changed)
        assert bindings.before_capture(world.engine, "parsalink").fields == ["description"]
        after = shadows(world)
        for (system, external_id), shadow in before.items():
            if system == "parsalink":
                kept = {k: v for k, v in shadow.items() if k != "description"}
                assert after[system, external_id] == kept
            else:
                assert after[system, external_id] == shadow
        with world.engine.session() as session:
            stamps = session.exec(select(Link.vendor_modified).where(Link.system == "parsalink"))
            assert set(stamps.all()) == {None}
        assert world.converge(cycles=2).clean
    finally:
        world.engine.close()


def shadows(world: World) -> dict[tuple[str, str], dict[str, object]]:
    """Every link's shadow, by system and vendor id."""
    with world.engine.session() as session:
        links = session.exec(select(Link)).all()
        return {(link.system, link.external_id): dict(link.shadow) for link in links}
