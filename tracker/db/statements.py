"""Hand-written statements on the hottest paths (a click, a conversion), kept prepared.

Django's cursors bind parameters on the client and never prepare; these run on a psycopg cursor of the
same connection, inside whatever transaction Django has open, and PostgreSQL parses and plans each of
them once per connection. When statements are being recorded (a test's CaptureQueriesContext, DEBUG)
they go through Django's cursor instead, so they are seen.
"""

import functools
import operator
from typing import NamedTuple

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import JSONField, Model
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from psycopg.types.json import Jsonb


def fetch_one(sql: str, params: list) -> tuple | None:
    """Run one statement with %s placeholders and return its first row (None when it returns none).

    A prepared statement may be run with a generic plan, made without the parameters' values and perhaps
    before the table had statistics: write each one so that only the intended index can serve it.
    """
    db = connections[DEFAULT_DB_ALIAS]  # once: each `connection.x` looks the thread's connection up again
    if db.queries_logged:
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()
    cursor = db.statement_cursor()  # tracker.db's backend
    with db.wrap_database_errors:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchone()


def insert_columns(model) -> tuple:
    """The model's concrete fields an INSERT writes (all but the primary key), in a fixed order."""
    return tuple(field for field in model._meta.concrete_fields if not field.primary_key)


def insert_params(instance, fields: tuple) -> list:
    """The instance's values of `fields` as statement parameters (JSON fields as jsonb). A hot path builds
    its reader once with param_reader instead."""
    return param_reader(fields)(instance)


def param_reader(fields: tuple):
    """reader(instance) -> the instance's values of `fields` as statement parameters (JSON fields as jsonb).
    One C call reads every attribute (a click has 33): a Python loop over the fields was ~5 % of a click."""
    json_at = tuple(index for index, field in enumerate(fields) if isinstance(field, JSONField))
    getter = operator.attrgetter(*(field.attname for field in fields))
    if len(fields) == 1:  # attrgetter of one name returns the value itself, not a tuple
        return lambda instance: [Jsonb(getter(instance))] if json_at else [getter(instance)]

    def read(instance) -> list:
        params = list(getter(instance))
        for index in json_at:
            params[index] = Jsonb(params[index])
        return params

    return read


def new_instance(model, **values) -> object:
    """model(**values), built as the ORM builds a row it read (the values in column order), without
    Model.__init__'s keyword path: for a click that path was two thirds of its Python work outside the
    INSERT. `values` by attname, or a related object by its field's name (then cached on the instance, as
    assigning it would); a field not given takes its default."""
    plan, attnames = _init_plan(model)
    args, related, used = [], [], 0
    for attname, relation, field in plan:
        if relation is not None and relation in values:
            target = values[relation]
            related.append((field, target))
            args.append(None if target is None else target.pk)
            used += 1
        elif attname in values:
            args.append(values[attname])
            used += 1
        else:
            args.append(None if field.primary_key else field.get_default())
    if used != len(values):
        known = {name for entry in plan for name in entry[:2]}
        raise TypeError(f"{model.__name__} has no field {sorted(set(values) - known)}")
    instance = _built(model, attnames, args)
    for field, target in related:
        field.set_cached_value(instance, target)
    return instance


def _built(model, attnames: tuple, values) -> object:
    """model(*values), the values of every concrete field in column order."""
    if pre_init.has_listeners(model) or post_init.has_listeners(model):
        return model(*values)
    # What Model.__init__ does with every value given in column order when nothing listens to its two
    # signals: a new state, and the values in the instance's dict (no field of a new instance has a setter
    # that does more). A conversion built five instances through __init__: ~8 % of its Python.
    instance = model.__new__(model)
    instance._state = ModelState()
    instance.__dict__.update(zip(attnames, values, strict=True))
    return instance


@functools.cache
def _init_plan(model) -> tuple:
    fields = model._meta.concrete_fields
    plan = tuple((f.attname, f.name if f.is_relation else None, f) for f in fields)
    return plan, _row_loader(model)[0]


def model_from_row(model, values) -> object:
    """The instance the ORM would build from the values of all the model's concrete columns, in order
    (Model.from_db, with each field's from_db_value, e.g. JSON decoded)."""
    attnames, converters = _row_loader(model)
    if len(values) != len(attnames):
        raise ValueError(f"{len(values)} values for the {len(attnames)} columns of {model.__name__}")
    if converters:
        values = list(values)
        for index, convert in converters:
            values[index] = convert(values[index], None, connection)
    alias = connection.alias
    if model.from_db.__func__ is not Model.from_db.__func__:  # a model with its own from_db
        return model.from_db(alias, attnames, values)
    instance = _built(model, attnames, values)  # what Model.from_db does, without its keyword checks
    instance._state.adding = False
    instance._state.db = alias
    return instance


@functools.cache
def _row_loader(model) -> tuple[tuple, tuple]:
    """The model's column attribute names and (position, from_db_value) of the fields that convert: worked
    out once, not for every row (a conversion reads about a hundred columns)."""
    fields = model._meta.concrete_fields
    converters = tuple(
        (index, field.from_db_value) for index, field in enumerate(fields) if hasattr(field, "from_db_value")
    )
    return tuple(field.attname for field in fields), converters


class Joined(NamedTuple):
    """One table of a hand-written select_related: its model, its alias and the JOIN that brings it
    ({table} stands for the model's table; empty for the first)."""

    model: type
    alias: str
    join: str = ""


def joined_columns(tables: tuple[Joined, ...]) -> str:
    """Every concrete column of every table, in order: what `instances_from_row` reads back."""
    return ", ".join(f"{t.alias}.{_quote(f.column)}" for t in tables for f in t.model._meta.concrete_fields)


def joined_clauses(tables: tuple[Joined, ...]) -> str:
    return " ".join(t.join.format(table=_quote(t.model._meta.db_table)) for t in tables if t.join)


def joined_select(tables: tuple[Joined, ...], where: str) -> str:
    """SELECT every column of `tables` FROM the first (under its alias; its own JOIN is not used) and the
    others' JOINs, WHERE `where`: rows for `instances_from_row`."""
    first = tables[0]
    return (
        f"SELECT {joined_columns(tables)} FROM {_quote(first.model._meta.db_table)} {first.alias} "
        f"{joined_clauses(tables[1:])} WHERE {where}"
    )


def instances_from_row(tables: tuple[Joined, ...], row, start: int = 0) -> tuple[list, int]:
    """One instance per table from a row of `joined_columns` (None where a LEFT JOIN found nothing), and the
    index of the row's first column after them."""
    instances = []
    for table in tables:
        width = len(table.model._meta.concrete_fields)
        values = row[start : start + width]
        instances.append(None if values[0] is None else model_from_row(table.model, values))
        start += width
    return instances, start


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)
