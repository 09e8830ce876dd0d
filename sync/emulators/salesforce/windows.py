"""Get Updated / Get Deleted: the replication windows (``sobjects/Opportunity/updated|deleted``).

Dates are cut to the minute; ``latestDateCovered`` is the end, or the current minute when the
end lies ahead, and is the next window's start. Updated looks back 30 days at most; the delete
log keeps 15 days (or less after a purge): ``earliestDateAvailable`` says from when.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.datastructures import QueryParams

from sync.emulators.salesforce.common import (
    DELETED_RETENTION,
    UPDATED_WINDOW,
    SalesforceError,
    parse_datetime,
    stamp,
)
from sync.emulators.salesforce.data import SalesforceData


def _window(data: SalesforceData, params: QueryParams) -> tuple[dt.datetime, dt.datetime]:
    raw_start, raw_end = params.get("start"), params.get("end")
    if not raw_start or not raw_end:
        raise SalesforceError(400, "MISSING_ARGUMENT", "start and end are required")
    start, end = parse_datetime(raw_start), parse_datetime(raw_end)
    if start is None or end is None:
        raise SalesforceError(
            400,
            "INVALID_REPLICATION_DATE",
            f"invalid date: {raw_start if start is None else raw_end}",
        )
    start, end = _minute(start), _minute(end)
    if end <= start:
        raise SalesforceError(
            400, "INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate"
        )
    return start, min(end, _minute(data.clock.peek()))


def _minute(moment: dt.datetime) -> dt.datetime:
    return moment.replace(second=0, microsecond=0)


def updated(data: SalesforceData, params: QueryParams) -> dict[str, Any]:
    start, covered = _window(data, params)
    if start < data.clock.peek() - UPDATED_WINDOW:
        raise SalesforceError(
            400, "INVALID_REPLICATION_DATE", "startDate cannot be more than 30 days ago"
        )
    ids = [
        row["Id"]
        for row in data.opportunities.values()
        if not row["IsDeleted"] and start <= row["SystemModstamp"] < covered
    ]
    return {"ids": ids, "latestDateCovered": stamp(covered)}


def deleted(data: SalesforceData, params: QueryParams) -> dict[str, Any]:
    start, covered = _window(data, params)
    now = data.clock.peek()
    expire_deleted(data, now)
    earliest = _minute(max(now - DELETED_RETENTION, data.purged_before or now - DELETED_RETENTION))
    records = [
        {"id": record_id, "deletedDate": stamp(moment)}
        for record_id, moment in data.deleted_log
        if start <= moment < covered
    ]
    return {
        "deletedRecords": records,
        "earliestDateAvailable": stamp(earliest),
        "latestDateCovered": stamp(covered),
    }


def expire_deleted(data: SalesforceData, now: dt.datetime) -> None:
    """Deletes older than the retention leave the log and the recycle bin for good."""
    horizon = max(now - DELETED_RETENTION, data.purged_before or now - DELETED_RETENTION)
    gone = {record_id for record_id, moment in data.deleted_log if moment < horizon}
    if not gone:
        return
    data.deleted_log[:] = [(i, m) for i, m in data.deleted_log if i not in gone]
    for record_id in gone:
        data.opportunities.pop(record_id, None)


def purge(data: SalesforceData, now: dt.datetime) -> None:
    """Empty the recycle bin and the delete log now (a large org's two-hourly purge)."""
    data.purged_before = now
    expire_deleted(data, now)
