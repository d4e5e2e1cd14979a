"""Bulk inserts of thousands of rows at the driver's speed.

`session.execute(insert(table), rows)` converts every value of every row through its column type one at a time
(for a datetime column on SQLite, a string formatted per row), which costs more than the database's own work on a
batch of a thousand accounts. `insert_many` compiles the statement once per table and shape, converts each
column's values with the same bind processors SQLAlchemy would use (once per distinct value object, since a batch
shares its timestamps), and hands the rows to the driver's executemany. What is stored is exactly what
`session.execute` would store; errors are the same SQLAlchemy exceptions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

Processor = Callable[[Any], Any] | None
# The driver's SQL, the keys in bind order, whether the driver takes tuples, and the keys' bind processors; or the
# statement itself when it needs more than the rows give (a column default computed in Python).
_Compiled = tuple[str, tuple[str, ...], bool, tuple[Processor, ...]] | Any
_compiled: dict[tuple[str, Table, tuple[str, ...], bool], _Compiled] = {}


def _compile(dialect: Dialect, table: Table, keys: tuple[str, ...], ignore_duplicates: bool) -> _Compiled:
    cache_key = (dialect.name, table, keys, ignore_duplicates)
    found = _compiled.get(cache_key)
    if found is None:
        if ignore_duplicates:
            maker = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
            statement: Any = maker(table).on_conflict_do_nothing()
        else:
            statement = insert(table)
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        bound = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.params)
        order = bound if compiled.positional else keys
        if set(bound) != set(keys):
            found = statement
        else:
            processors = tuple(table.c[key].type.dialect_impl(dialect).bind_processor(dialect) for key in order)
            found = (str(compiled), order, compiled.positional, processors)
        _compiled[cache_key] = found
    return found


def _converted(values: list[Any], processor: Processor) -> list[Any]:
    if processor is None:
        return values
    out = []
    last_in: Any = object()
    last_out: Any = None
    for value in values:
        if value is not last_in:  # rows of a batch share their timestamp objects: convert each once
            last_in, last_out = value, processor(value)
        out.append(last_out)
    return out


def insert_many(session: Session, table: Table, rows: Sequence[Mapping[str, Any]],
                ignore_duplicates: bool = False) -> int:
    """Insert the rows (dicts of column key to value) in one executemany per shape of row; with
    `ignore_duplicates`, a row whose key exists already is skipped (ON CONFLICT DO NOTHING). Returns how many
    rows were written."""
    written = 0
    if not rows:
        return written
    by_shape: dict[tuple[str, ...], list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        by_shape[tuple(row)].append(row)
    connection = session.connection()
    for keys, shaped in by_shape.items():
        compiled = _compile(connection.dialect, table, keys, ignore_duplicates)
        if not isinstance(compiled, tuple):
            result: Any = session.execute(compiled, shaped)
            written += result.rowcount if result.rowcount >= 0 else len(shaped)  # unknown with RETURNING: all
            continue
        sql, order, positional, processors = compiled
        columns = [_converted([row[key] for row in shaped], processor)
                   for key, processor in zip(order, processors, strict=True)]
        params: list[Any] = (list(zip(*columns, strict=True)) if positional
                             else [dict(zip(order, values, strict=True)) for values in zip(*columns, strict=True)])
        written += connection.exec_driver_sql(sql, params).rowcount
    return written


class Lookup:
    """A select whose `IN` lists are expanding parameters (`column.in_(bindparam(name, expanding=True))`), run on
    SQLite at the driver's speed: its text is compiled once and each list becomes one `?` per value, where
    SQLAlchemy would render and convert thousands of parameters on every call. Rows come back as the driver gives
    them (SQLite: booleans as 0 or 1, times as text). Elsewhere the statement runs as it is."""

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._sqlite: tuple[str, tuple[str, ...]] | None = None

    def rows(self, connection: Any, params: Mapping[str, Sequence[Any]]) -> Any:
        if connection.dialect.name != "sqlite":
            return connection.execute(self.statement, params)
        if self._sqlite is None:
            compiled = self.statement.compile(dialect=connection.dialect)
            self._sqlite = (str(compiled), tuple(compiled.positiontup or ()))
        sql, order = self._sqlite
        for name in dict.fromkeys(order):
            sql = sql.replace(f"__[POSTCOMPILE_{name}]", ",".join("?" * len(params[name])) or "NULL")
        return connection.exec_driver_sql(sql, tuple(value for name in order for value in params[name]))
