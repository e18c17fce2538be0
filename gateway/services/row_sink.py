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

An RMA's creation uses the same sink for all it writes after taking its site's lock: the
new RMA with its lines and transitions (``write(session, new=rma)``), its announcement,
its audit row and one webhook delivery per active endpoint (:meth:`RowSink.add_fan_out`,
``INSERT ... SELECT`` from the endpoints, which are then not read first). On PostgreSQL
that is one statement of data-modifying ``WITH`` queries: one round trip instead of
seven (the endpoints' SELECT, three INSERTs of the flush, three of the sink).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Column,
    Connection,
    Select,
    Table,
    bindparam,
    event,
    insert,
    literal,
    literal_column,
    select,
    union_all,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import (
    ONETOMANY,
    Mapper,
    Session,
    make_transient,
    make_transient_to_detached,
)
from sqlalchemy.sql.dml import Insert

from gateway.models import Base

#: key of ``Session.info`` holding the batch's open :class:`RowSink`
SINK_KEY = "rs_row_sink"
#: PostgreSQL: a group of at least this many rows is COPYed, a smaller one INSERTed (a
#: COPY costs two round trips, the command and then the data; an INSERT one)
COPY_MIN_ROWS = 8


@dataclass(frozen=True)
class FanOut:
    """Where a fanned-out row gets its other columns: one row per row of ``source``.

    ``source`` selects the columns named by ``keys`` (in that order), e.g. the active
    webhook endpoints' ``url`` and ``id`` for a delivery's ``url`` and ``endpoint_id``.
    """

    source: Select[*tuple[Any, ...]]
    keys: tuple[str, ...]


#: rows kept, by (table, sorted column keys), in the order added
_Rows = dict[tuple[Table, tuple[str, ...]], list[dict[str, Any]]]
#: fanned-out rows kept: (table, shared values, where the rest comes from), in order added
_FanOuts = list[tuple[Table, dict[str, Any], FanOut]]


class RowSink:
    """The append-only rows of one batch, by table and set of columns, in order added."""

    def __init__(self) -> None:
        self._rows: _Rows = {}
        self._fan_outs: _FanOuts = []
        self.count = 0

    def add(self, model: type[Base], values: dict[str, Any]) -> None:
        """Keep one row of ``model`` (values by attribute name, which is the column key)."""
        table = cast(Table, model.__table__)
        self._rows.setdefault((table, tuple(sorted(values))), []).append(values)
        self.count += 1

    def add_fan_out(self, model: type[Base], values: dict[str, Any], fan_out: FanOut) -> None:
        """Keep a row of ``model`` to write once per row ``fan_out.source`` selects then.

        ``values`` are the columns every copy shares; the source gives the rest (one
        ``INSERT ... SELECT``: the source is read by the statement that writes, so no
        round trip reads it first). Copies are written in the source's order.
        """
        self._fan_outs.append((cast(Table, model.__table__), values, fan_out))
        self.count += 1

    def write(self, session: Session, new: Base | None = None) -> int:
        """Insert every row kept, per table and set of columns, in order; empty the sink.

        ``new``: a new ORM object (e.g. a new :class:`gateway.models.Rma`), transient or
        pending, to insert with the rows, with its new children (its one-to-many
        relationships that cascade: the RMA's lines and transitions), instead of at the
        session's flush; a transient one the sink cannot write is added to the session. On
        success they are written, given their ids (primary and foreign keys) and every
        column value they took (defaults, NULL), and are persistent objects of the
        session with nothing left to flush, as after a flush: a later change to them is
        an UPDATE. Objects the unit of work must write (not pending, or with children of
        their own, e.g. a line with units) are left to the flush.

        PostgreSQL: a group of :data:`COPY_MIN_ROWS` rows or more is COPYed (psycopg's
        ``Cursor.copy``, rows adapted by the columns' own bind processors, the columns'
        Python-side defaults filled in as SQLAlchemy would), about four times cheaper per
        row than an executemany INSERT. Everything else (smaller groups such as the one
        announcement and audit row of an RMA's creation, fanned-out rows, ``new`` and its
        children) is one statement: data-modifying ``WITH`` queries (PostgreSQL 15
        manual, 7.8.4), so one round trip. SQLite: one Core executemany INSERT per group,
        one ``INSERT ... SELECT`` per fanned-out row, an ``INSERT ... RETURNING`` per
        table of ``new``'s. Returns the number of rows kept that were written (``new``
        and fanned-out copies not counted).

        Raises:
            sqlalchemy.exc.IntegrityError: a row breaks a constraint (e.g. a second credit
                of one unit, a taken RMA number): the caller rolls the whole transaction
                back, as for a failed flush.
            sqlalchemy.exc.DBAPIError: any other failure of the database.
        """
        written = self.count
        graph = _graph_of(new) if new is not None else None
        if self._rows or self._fan_outs or graph is not None:
            connection = session.connection()
            if connection.dialect.name == "postgresql":
                _write_postgres(connection, self._rows, self._fan_outs, graph)
            else:
                _write_each(connection, self._rows, self._fan_outs, graph)
        if graph is not None:
            assert new is not None
            _attach(session, new, graph)
        elif new is not None and sa_inspect(new).transient:
            session.add(new)  # not one the sink can write: the flush does
        self._rows.clear()
        self._fan_outs.clear()
        self.count = 0
        return written


@dataclass
class _Node:
    """One new object of a graph: its table, column values and parent link."""

    obj: Base
    table: Table
    values: dict[str, Any]
    pk: Column[Any]
    #: (foreign key column key, the parent's node) for a child
    parent: tuple[str, _Node] | None = None


def _graph_of(root: Base) -> list[_Node] | None:
    """``root`` and its new children as nodes (root first), or None if ineligible.

    Eligible: ``root`` is new (transient or pending), has a single-column primary key,
    every child in a cascading one-to-many relationship is new, links to it by one
    foreign key column, has no children of its own (their collections empty or not
    loaded) and sets the same columns as the other children of its table.
    """
    root_node = _node(root)
    if root_node is None:
        return None
    nodes = [root_node]
    for rel in sa_inspect(type(root)).relationships:
        if rel.viewonly or rel.direction is not ONETOMANY or not rel.cascade.save_update:
            continue
        if rel.key not in root.__dict__:
            continue
        pairs = rel.local_remote_pairs or []
        if len(pairs) != 1 or pairs[0][0] is not root_node.pk:
            return None
        fk = str(pairs[0][1].key)
        for child in getattr(root, rel.key):
            node = _node(child, fk=fk)
            if node is None or _has_children(child):
                return None
            node.parent = (fk, root_node)
            nodes.append(node)
    shapes: dict[Table, set[tuple[str, ...]]] = {}
    for node in nodes[1:]:
        shapes.setdefault(node.table, set()).add(tuple(sorted(node.values)))
    if any(len(keys) > 1 for keys in shapes.values()):
        return None  # children of one table with different columns: one INSERT cannot
    return nodes


def _node(obj: Base, fk: str | None = None) -> _Node | None:
    """The object's node: its loaded columns, its defaults for the rest; None if not new."""
    state = sa_inspect(obj)
    if not (state.transient or state.pending):
        return None
    plan = _plan(state.mapper, fk)
    if plan is None:
        return None
    table, pk, columns = plan
    values: dict[str, Any] = {}
    loaded = obj.__dict__
    for key, column_key, default, null in columns:
        if key in loaded:
            values[column_key] = loaded[key]
        elif default is not None:
            values[column_key] = default()
            setattr(obj, key, values[column_key])  # as the flush would leave it
        elif null:
            setattr(obj, key, None)  # stored NULL: loaded, not a lazy load later
    return _Node(obj, table, values, pk)


#: a mapped column of a node: (attribute key, column key, its Python-side default or
#: None, whether it is stored NULL when unset: no default on either side)
_PlanColumn = tuple[str, str, Callable[[], Any] | None, bool]


@functools.cache  # mappers are few and fixed once configured
def _plan(
    mapper: Mapper[Any], fk: str | None
) -> tuple[Table, Column[Any], tuple[_PlanColumn, ...]] | None:
    """The mapper's table, primary key and columns to write (all but the key and ``fk``).

    None for a primary key of several columns. Read once per mapper and ``fk``: walking
    the mapper per object cost more than building the statement's parameters.
    """
    table = cast(Table, mapper.local_table)
    if len(mapper.primary_key) != 1:
        return None
    pk = cast(Column[Any], mapper.primary_key[0])
    columns: list[_PlanColumn] = []
    for prop in mapper.column_attrs:
        column = cast(Column[Any], prop.columns[0])
        if column.table is not table or column is pk or column.key == fk:
            continue
        default = _default_of(column) if _has_python_default(column) else None
        columns.append((prop.key, column.key, default, column.server_default is None))
    return table, pk, tuple(columns)


def _attach(session: Session, new: Base, graph: list[_Node]) -> None:
    """Make the written objects persistent and clean objects of the session.

    Pending ones are taken out first (``expunge``, cascading to the children), before
    the flush would insert them again; then they are given their identity with their
    history reset (``make_transient_to_detached``) and added (``add``, cascading):
    persistent, nothing pending.
    """
    if sa_inspect(new).pending:
        session.expunge(new)
    for node in graph:
        make_transient_to_detached(node.obj)
    session.add(new)
    # every one, not just ``new``: a rollback expires its collections, and an expunge
    # does not cascade through an expired collection
    session.info.setdefault(WRITTEN_KEY, []).extend(
        (node.obj, dict(node.obj.__dict__)) for node in graph
    )


#: key of ``Session.info`` listing the objects :meth:`RowSink.write` made persistent in the
#: session's current transaction, with their values (made transient again if it rolls
#: back, forgotten when it commits)
WRITTEN_KEY = "rs_row_sink_written"


@event.listens_for(Session, "after_commit")
def _forget_written(session: Session) -> None:
    session.info.pop(WRITTEN_KEY, None)


@event.listens_for(Session, "after_soft_rollback")
def _expunge_written(session: Session, previous_transaction: Any) -> None:
    """Make the objects the sink wrote transient again when their transaction rolls back.

    Made persistent without a flush, they are not among the transaction's new objects,
    which a rollback makes transient (with their values): without this they would stay
    in the identity map, expired, with ids the database never kept (SQLite gives them
    out again: the next object with one would collide with the ghost). As after a
    rolled-back flush, a caller that kept one can still read it.
    """
    if previous_transaction.parent is not None:  # a savepoint: the outer one decides
        return
    for obj, values in session.info.pop(WRITTEN_KEY, ()):
        if obj in session:
            session.expunge(obj)
        make_transient(obj)
        for key, value in values.items():
            obj.__dict__.setdefault(key, value)  # the values the rollback expired


def _has_children(obj: Base) -> bool:
    for rel in sa_inspect(type(obj)).relationships:
        if rel.viewonly or rel.direction is not ONETOMANY:
            continue
        if obj.__dict__.get(rel.key):
            return True
    return False


def _complete(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with the Python-side defaults of the columns it leaves out.

    (SQLAlchemy leaves them unset in an INSERT that is a ``WITH`` query, and fills only
    scalar ones into ``INSERT ... SELECT``: every value is given explicitly instead.)
    """
    out = dict(values)
    for column in table.columns:
        if column.key not in out and _has_python_default(column):
            out[column.key] = _default_of(column)()
    return out


def _fan_out_values(table: Table, values: dict[str, Any], fan_out: FanOut) -> dict[str, Any]:
    """The shared columns of a fanned-out row, defaults filled, the source's left out."""
    full = _complete(table, {k: v for k, v in values.items() if k not in fan_out.keys})
    for key in fan_out.keys:
        full.pop(key, None)
    return full


def _fan_out_insert(table: Table, values: dict[str, Any], fan_out: FanOut) -> Insert:
    full = _fan_out_values(table, values, fan_out)
    keys = list(full)
    constants = [literal(full[k], table.c[k].type) for k in keys]
    source = fan_out.source.with_only_columns(*constants, *fan_out.source.selected_columns)
    return insert(table).from_select([*keys, *fan_out.keys], source)


def _write_postgres(
    connection: Connection, rows: _Rows, fan_outs: _FanOuts, graph: list[_Node] | None
) -> None:
    """COPY the large groups; the rest in one statement of ``WITH`` queries, where it can.

    PostgreSQL runs the ``WITH`` queries of a statement in no set order, so rows whose
    ids must keep an order are never split across them: each table's rows are one
    ``INSERT ... SELECT ... ORDER BY`` (identity values are drawn in the order the rows
    are inserted, which SQLAlchemy's own "insertmanyvalues" also relies on), a table
    whose rows do not share one set of columns is written before the statement, group
    by group, and a table's second and later fanned-out rows after it, one by one. The
    statement is built once per shape (tables, columns, row counts) with bound
    parameters and kept (:data:`_STATEMENTS`): building and cache-keying a statement of
    a dozen INSERTs costs more than sending it.
    """
    by_table: dict[Table, list[dict[str, Any]]] = {}
    for (table, columns), group in rows.items():
        if len(group) >= COPY_MIN_ROWS:
            _copy(connection, table, columns, group)
        else:
            by_table.setdefault(table, []).extend(_full(table, row) for row in group)
    shape: list[tuple[Any, ...]] = []
    params: dict[str, Any] = {}

    def part(kind: str, table: Table, group: list[dict[str, Any]], extra: Any = None) -> int:
        keys = tuple(sorted(group[0]))
        j = len(shape)
        shape.append((kind, table, keys, len(group), extra))
        for r, values in enumerate(group):
            params.update({f"v{j}_{r}_{k}": values[k] for k in keys})
        return j

    for table, group in by_table.items():
        if len({tuple(sorted(values)) for values in group}) == 1:
            part("rows", table, group)
        else:  # rare: rows of one table with different columns, in the order added
            for (t, _columns), g in rows.items():
                if t is table and len(g) < COPY_MIN_ROWS:
                    connection.execute(t.insert(), g)
    later: _FanOuts = []
    for table, values, fan in fan_outs:
        if table in by_table or any(s[1] is table for s in shape if s[0] == "fan"):
            later.append((table, values, fan))
        else:
            part("fan", table, [_fan_out_values(table, values, fan)], fan)
    nodes: dict[int, list[_Node]] = {}
    if graph:
        root = part("new", graph[0].table, [graph[0].values])
        nodes[root] = [graph[0]]
        children: dict[tuple[Table, str], list[_Node]] = {}
        for node in graph[1:]:
            assert node.parent is not None
            children.setdefault((node.table, node.parent[0]), []).append(node)
        for (table, fk), kids in children.items():
            nodes[part("new", table, [k.values for k in kids], (fk, root))] = kids
    if shape:
        key = tuple(shape)
        statement = _STATEMENTS.get(key)
        if statement is None:
            if len(_STATEMENTS) >= _MAX_STATEMENTS:
                _STATEMENTS.clear()
            statement = _STATEMENTS[key] = _statement(shape)
        result = connection.execute(statement, params)
        if graph:
            ids: dict[int, list[int]] = {}
            for j, new_id in result:
                ids.setdefault(int(j), []).append(int(new_id))
            given: dict[int, int] = {}
            for j, group_nodes in nodes.items():
                # ascending ids are the rows' order (the INSERT's ORDER BY)
                for node, new_id in zip(group_nodes, sorted(ids[j]), strict=True):
                    given[id(node)] = new_id
            _give_ids(graph, given)
    for table, values, fan in later:
        connection.execute(_fan_out_insert(table, values, fan))


#: the statements :func:`_write_postgres` built, by shape (bounded: cleared when full)
_STATEMENTS: dict[tuple[Any, ...], Any] = {}
_MAX_STATEMENTS = 256


def _full(table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """:func:`_complete`, and NULL for the other columns without a server default."""
    out = _complete(table, values)
    for column in table.columns:
        if column.key not in out and column.server_default is None and not column.primary_key:
            out[column.key] = None
    return out


def _statement(shape: list[tuple[Any, ...]]) -> Any:
    """One statement for the parts of ``shape``: ``WITH`` queries, parameters ``v<j>_<r>_<key>``.

    A part of several rows is ``INSERT ... SELECT ... FROM (SELECT <ordinal>, <row> UNION
    ALL ...) ORDER BY <ordinal>``; the new rows' ``WITH`` queries return their ids, read
    by the statement itself as ``(part, id)`` rows.
    """
    ctes: list[Any] = []
    new: dict[int, Any] = {}  # part index -> its WITH query returning the new ids
    for j, (kind, table, keys, n, extra) in enumerate(shape):
        fk = extra[0] if kind == "new" and extra is not None else None
        parent_id = select(new[extra[1]].c.id).scalar_subquery() if fk is not None else None

        def row(r: int, j: int = j, table: Table = table, keys: tuple[str, ...] = keys) -> Any:
            return {k: bindparam(f"v{j}_{r}_{k}", type_=table.c[k].type) for k in keys}

        stmt: Any
        if kind == "fan":
            binds = row(0)
            source = extra.source.with_only_columns(*binds.values(), *extra.source.selected_columns)
            stmt = insert(table).from_select([*keys, *extra.keys], source)
        elif n == 1:
            values = row(0)
            if fk is not None:
                values[fk] = parent_id
            stmt = insert(table).values(values)
        else:
            names = [*keys, *([fk] if fk is not None else [])]
            selects: list[Select[Any]] = [
                select(
                    literal_column(str(r)).label("rs_ord"),
                    *[v.label(k) for k, v in row(r).items()],
                    *([parent_id.label(fk)] if parent_id is not None and fk else []),
                )
                for r in range(n)
            ]
            ordered = union_all(*selects).subquery("rs_rows")
            stmt = insert(table).from_select(
                names, select(*[ordered.c[k] for k in names]).order_by(ordered.c.rs_ord)
            )
        if kind == "new":
            pk = next(iter(table.primary_key.columns))
            new[j] = stmt.returning(pk.label("id")).cte(f"rs_{j}")
        else:
            ctes.append(stmt.cte(f"rs_{j}"))
    if new:
        query = union_all(
            *[select(literal_column(str(j)).label("part"), c.c.id) for j, c in new.items()]
        )
        return query.add_cte(*ctes) if ctes else query
    last = ctes.pop().element  # the last INSERT is the statement, the others its WITH
    return last.add_cte(*ctes) if ctes else last


def _write_each(
    connection: Connection, rows: _Rows, fan_outs: _FanOuts, graph: list[_Node] | None
) -> None:
    """One statement per group, fanned-out row and new object (SQLite: no round trips)."""
    for (table, _columns), group in rows.items():
        connection.execute(table.insert(), group)
    for table, values, fan in fan_outs:
        connection.execute(_fan_out_insert(table, values, fan))
    if graph is None:
        return
    by_node: dict[int, int] = {}
    for node in graph:
        values = dict(node.values)
        if node.parent is not None:
            fk, parent = node.parent
            values[fk] = by_node[id(parent)]
        new_id = connection.execute(
            insert(node.table).values(values).returning(node.pk)
        ).scalar_one()
        by_node[id(node)] = int(new_id)
    _give_ids(graph, by_node)


def _give_ids(graph: list[_Node], by_node: dict[int, int]) -> None:
    """Set each node's primary key and its parent link from ``by_node`` (``id(node)`` -> id)."""
    for node in graph:
        mapper = sa_inspect(node.obj).mapper
        setattr(node.obj, mapper.get_property_by_column(node.pk).key, by_node[id(node)])
        if node.parent is not None:
            fk, parent = node.parent
            prop = mapper.get_property_by_column(node.table.c[fk])
            setattr(node.obj, prop.key, by_node[id(parent)])


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


def _has_python_default(column: Column[Any]) -> bool:
    default = column.default
    return default is not None and bool(default.is_scalar or default.is_callable)


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
