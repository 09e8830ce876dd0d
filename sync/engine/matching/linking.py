"""Applying a proposal: matched groups merge into one record (fields by the conflict policy,
rows of the absorbed records moved onto the kept one), ambiguous groups are held, records no
longer ambiguous are released, and what each system now lacks is queued. In batches: a
statement per table and chunk, not per record."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlmodel import Session

from sync.engine.context import Engine
from sync.engine.fold import fold_fields
from sync.engine.identity import index_keys
from sync.engine.journal import Notes
from sync.engine.matching.proposal import Deal, Group, Proposal
from sync.engine.outbound import MATCH_HOLD, enqueue_pushes
from sync.store import outbox, records
from sync.store.models import Record

CHUNK = 400  # ids per statement (SQLite binds up to 32,766 variables; PostgreSQL 65,535)


@dataclass
class Applied:
    linked: int = 0  # groups whose records were merged into one
    merged_records: int = 0  # records absorbed
    held: int = 0  # records held for a person
    released: int = 0  # records no longer held


def apply(
    engine: Engine, proposal: Proposal, *, by: str, session: Session | None = None
) -> Applied:
    """Link every matched group (merge its records into one), hold the records of every
    ambiguous group, release held records the proposal no longer calls ambiguous. In batches:
    one query per table for all the records, not one per record (a store of 10,000 deals is
    matched in one go)."""
    if session is None:
        with engine.session() as own:
            result = apply(engine, proposal, by=by, session=own)
            own.commit()
            return result
    batch = _Batch(engine, session, by)
    batch.load(d.record_id for group in proposal.groups for d in group.deals)
    for group in proposal.groups:
        if group.status == "ambiguous":
            for deal in group.deals:
                batch.hold(deal, group)
            continue
        keep = batch.release(group.deals[0])
        if keep is None:
            continue
        if group.to_link:
            for deal in group.deals[1:]:
                other = batch.release(deal)
                if other is not None:
                    batch.merge(keep, other, f"{group.why} ({by})")
            batch.result.linked += 1
    batch.finish()
    return batch.result


class _Batch:
    """The writes of one ``apply``, gathered and then made a statement per table."""

    def __init__(self, engine: Engine, session: Session, by: str) -> None:
        self.engine, self.session, self.by = engine, session, by
        self.records: dict[str, Record] = {}
        self.moves: dict[str, str] = {}  # absorbed record id -> the record it joins
        self.held: list[str] = []
        self.touched: dict[str, Record] = {}  # records whose pushes must be queued again
        self.notes = Notes()
        self.result = Applied()

    def load(self, ids: Iterable[str]) -> None:
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            self.records.update((r.id, r) for r in records.many(self.session, chunk))

    def release(self, deal: Deal) -> Record | None:
        record = self.records.get(deal.record_id)
        if record is not None and MATCH_HOLD in record.held:
            record.held = [name for name in record.held if name != MATCH_HOLD]
            self.touched[record.id] = record
            self.result.released += 1
        return record

    def hold(self, deal: Deal, group: Group) -> None:
        record = self.records.get(deal.record_id)
        if record is None or MATCH_HOLD in record.held:
            return
        record.held = [*record.held, MATCH_HOLD]
        self.held.append(record.id)
        self.result.held += 1
        others = "; ".join(d.label() for d in group.deals if d.record_id != deal.record_id)
        self.notes.add(
            record.id,
            "match_held",
            f"{group.match_id}: {group.why}. Candidates: {others}. Nothing is created from "
            f"this deal until a person decides (crmsync match --csv / --apply) [{self.by}]",
        )

    def merge(self, keep: Record, other: Record, why: str) -> None:
        """Fold ``other``'s fields into ``keep`` (``fold.fold_fields``); its rows move when
        the batch finishes."""
        fold_fields(self.engine, keep, other, self.notes, "match")
        self.moves[other.id] = keep.id
        self.touched[keep.id] = keep
        self.touched.pop(other.id, None)
        self.notes.add(keep.id, "merged", f"matched record {other.id}: {why}")
        self.result.merged_records += 1

    def finish(self) -> None:
        session = self.session
        for record in self.records.values():
            if record.id not in self.moves and (
                record.id in self.touched or record.id in self.held
            ):
                session.add(record)
        session.flush()
        if self.held:  # creates already queued for them wait no more: none is to be sent
            for start in range(0, len(self.held), CHUNK):
                outbox.drop_unsent_creates(session, self.held[start : start + CHUNK])
        self._move_rows()
        self.notes.write(session)
        session.flush()
        natural = self.engine.config.sync.natural_key
        for record in self.touched.values():
            index_keys(session, record, natural)
            enqueue_pushes(self.engine, session, record, reason=f"first run: matched ({self.by})")

    def _move_rows(self) -> None:
        """Every row of an absorbed record moves to the record it joined (one statement per
        table and chunk); its open pushes are dropped (the kept record's are queued again)."""
        pairs = sorted(self.moves.items())
        for start in range(0, len(pairs), CHUNK):
            records.absorb(self.session, dict(pairs[start : start + CHUNK]), outbox.UNSENT_STATES)
        for gone_id in self.moves:
            self.session.expunge(self.records[gone_id])
