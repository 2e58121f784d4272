"""Grow a loaded bench calendar k-fold in SQL: copies of its entries with their publication
rows, occurrences and participants, under new ids, UIDs and hrefs.

Loading through the real PUT path costs milliseconds per event; the API benchmark needs 100k
entries of one user in minutes, so it loads the smallest size for real and copies it. The
copies are rows of the same shape as the originals (what a page or a multiget reads), with
``-c<k>`` in their UID and ``c<k>-`` before their href.
"""

from __future__ import annotations

from sqlalchemy import text

from gateway.db import Store
from gateway.models import Base

# table -> {column: SQL expression over the original row}; other columns are copied.
RENAMED = {
    "diary_entries": {"id": "id + :entry_off", "uid": "uid || :suffix",
                      "href": ":prefix || href"},
    "entry_participants": {"id": "id + :participant_off", "entry_id": "entry_id + :entry_off"},
    "published_items": {"id": "id + :item_off", "entry_id": "entry_id + :entry_off",
                        "uid": "uid || :suffix", "href": ":prefix || href"},
    "occurrences": {"id": "id + :occurrence_off", "item_id": "item_id + :item_off"},
}
OFFSETS = {"diary_entries": "entry_off", "entry_participants": "participant_off",
           "published_items": "item_off", "occurrences": "occurrence_off"}


def grow(store: Store, factor: int) -> None:
    """Make ``factor`` times as many rows as are there now (factor - 1 copies)."""
    with store.transaction() as session:
        tops = {table: int(session.execute(text(f"SELECT COALESCE(MAX(id), 0) FROM {table}"))
                           .scalar_one()) for table in RENAMED}
        for copy in range(1, factor):
            values = {OFFSETS[table]: top * copy for table, top in tops.items()}
            values.update(suffix=f"-c{copy}", prefix=f"c{copy}-")
            for table, renamed in RENAMED.items():
                columns = [c.name for c in Base.metadata.tables[table].columns]
                chosen = ", ".join(renamed.get(name, name) for name in columns)
                session.execute(text(
                    f"INSERT INTO {table} ({', '.join(columns)}) SELECT {chosen} FROM {table} "
                    f"WHERE id <= {tops[table]}"), values)
        if store.dialect == "postgresql":  # explicit ids: move the sequences past them
            for table in RENAMED:
                session.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT MAX(id) FROM {table}))"))
