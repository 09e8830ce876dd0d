"""The store: the tables (``models``), the database engine and migrations (``db``), and every
query crmsync runs against them, one module per table or concern:

``runs`` · ``records`` (and identity keys) · ``links`` · ``outbox`` · ``claims`` (the outbox
as drains claim and settle it) · ``journal`` · ``letters`` (dead letters) · ``conflicts`` ·
``cursors`` · ``systems`` (system states, held deletes) · ``refs`` (reference map) ·
``first_run`` · ``probe``.

Engine, runtime, admin and CLI code ask these modules named questions
(``links.find(session, system, external_id)``, ``outbox.open_row(session, ...)``) instead of
building selects: one place to read what is asked of the database, and to index for it. Every
function takes the caller's ``Session`` and never commits; transactions belong to the engine.
Nothing here imports the engine. ``tests/store/test_layering.py`` holds the rule.
"""
