"""Rows a batch only appends, written per table in one executemany (the batch's fast path).

The set-based event ingestion (:func:`gateway.services.events.ingest_events`) stages, per
credited parcel, about nine rows that nothing in the batch reads back or changes: three RMA
transitions, the credit, the stock movement, the announcement, and one webhook delivery
per endpoint and event type (plus connector jobs). Built as ORM objects, each costs its
constructor's instrumented attribute sets, the session's cascade and the unit of work's
bookkeeping at the flush, which was the largest part of a batch. While a batch holds a
:class:`RowSink` open on its session (:func:`open_sink`), :func:`add_row` appends such a
row as a plain dict instead, and the batch writes them with :meth:`RowSink.write` just
before its flush: one SQLAlchemy Core ``INSERT`` per table and set of columns, sent as
``insertmanyvalues`` pages, in the order the rows were added (so their ids keep that
order), inside the batch's transaction. A column a row leaves out gets its default, as
at the ORM's flush. Without an open sink :func:`add_row` adds the ORM object, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import Column, Connection, Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from gateway.models import Base

#: key of ``Session.info`` holding the batch's open :class:`RowSink`
SINK_KEY = "rs_row_sink"
#: PostgreSQL: a group of at least this many rows is COPYed, a smaller one INSERTed (a
#: COPY costs two round trips, the command and then the data; an INSERT one)
COPY_MIN_ROWS = 8


class RowSink:
    """The append-only rows of one batch, by table and set of columns, in order added."""

    def __init__(self) -> None:
        self._rows: dict[tuple[Table, tuple[str, ...]], list[dict[str, Any]]] = {}
        self.count = 0

    def add(self, model: type[Base], values: dict[str, Any]) -> None:
        """Keep one row of ``model`` (values by attribute name, which is the column key)."""
        table = cast(Table, model.__table__)
        self._rows.setdefault((table, tuple(sorted(values))), []).append(values)
        self.count += 1

    def write(self, session: Session) -> int:
        """Insert every row kept, per table and set of columns, in order; empty the sink.

        PostgreSQL: one ``COPY table (columns) FROM STDIN`` per group of
        :data:`COPY_MIN_ROWS` rows or more (psycopg's ``Cursor.copy``, rows adapted by the
        columns' own bind processors, the columns' Python-side defaults filled in as
        SQLAlchemy would), about four times cheaper per row than an executemany INSERT.
        Smaller groups (e.g. the one announcement and audit row of an RMA's creation) and
        other databases: one Core executemany INSERT (no RETURNING). Returns the number
        of rows written.

        Raises:
            sqlalchemy.exc.IntegrityError: a row breaks a constraint (e.g. a second credit
                of one unit): the caller rolls the whole batch back, as for a failed flush.
            sqlalchemy.exc.DBAPIError: any other failure of the database.
        """
        written = 0
        if self._rows:
            connection = session.connection()
            postgres = connection.dialect.name == "postgresql"
            for (table, columns), rows in self._rows.items():
                if postgres and len(rows) >= COPY_MIN_ROWS:
                    _copy(connection, table, columns, rows)
                else:
                    connection.execute(table.insert(), rows)
                written += len(rows)
        self._rows.clear()
        self.count = 0
        return written


def _copy(
    connection: Connection, table: Table, columns: tuple[str, ...], rows: list[dict[str, Any]]
) -> None:
    """``COPY`` the rows (all with exactly ``columns``) into ``table`` on PostgreSQL.

    Every value goes through its column's bind processor, None included, as it does in
    SQLAlchemy's own executemany INSERT (the SQLite path).
    """
    import psycopg  # (PostgreSQL's driver: only this path needs it)

    dialect = connection.dialect
    filled = [
        c
        for c in table.columns
        if c.key not in columns
        and c.default is not None
        and (c.default.is_scalar or c.default.is_callable)
    ]
    names = [table.columns[k] for k in columns] + filled
    processors = [c.type._cached_bind_processor(dialect) for c in names]
    quote = dialect.identifier_preparer.quote
    statement = (
        f"COPY {dialect.identifier_preparer.format_table(table)} "
        f"({', '.join(quote(c.name) for c in names)}) FROM STDIN"
    )
    defaults = [_default_of(c) for c in filled]
    raw = connection.connection.driver_connection
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
            for row in rows:
                values = [row[k] for k in columns] + [d() for d in defaults]
                copy.write_row(
                    [v if p is None else p(v) for v, p in zip(values, processors, strict=True)]
                )
    except psycopg.Error as exc:
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc


def _default_of(column: Column[Any]) -> Callable[[], Any]:
    """The column's Python-side default as a function of nothing (scalar or callable)."""
    default = column.default
    assert default is not None
    if default.is_scalar:
        value = default.arg  # type: ignore[attr-defined]
        return lambda: value
    fn = default.arg  # type: ignore[attr-defined]
    return lambda: fn(None)  # SQLAlchemy wraps a callable of no argument to take a context


def sink_of(session: Session) -> RowSink | None:
    """The sink the session's batch holds open, or None."""
    return cast(RowSink | None, session.info.get(SINK_KEY))


@contextmanager
def open_sink(session: Session) -> Iterator[RowSink]:
    """Hold a :class:`RowSink` open on ``session`` for the ``with`` block.

    The caller writes it (:meth:`RowSink.write`) before it flushes; rows still kept when
    the block ends (it failed) are dropped with the batch's rollback.
    """
    sink = RowSink()
    session.info[SINK_KEY] = sink
    try:
        yield sink
    finally:
        session.info.pop(SINK_KEY, None)


def add_row(session: Session, model: type[Base], **values: Any) -> None:
    """Add one append-only row of ``model`` to the caller's transaction.

    Into the session's open sink as a dict when a batch holds one, else as an ORM object
    (``session.add(model(**values))``). For rows nothing reads back before the commit.
    """
    sink = sink_of(session)
    if sink is None:
        session.add(model(**values))
    else:
        sink.add(model, values)
