"""A migration operation for index housekeeping on large tables: on PostgreSQL, hand-written SQL that changes
only metadata (drop an index, rename a constraint); elsewhere (SQLite in development) what Django's own
operations would do. Django's AlterField for the same change would re-create foreign keys and rebuild unique
indexes, which takes a lock for as long as the table is large. The SQL may be a list of statements, each run
on its own: `CREATE INDEX CONCURRENTLY` needs that (and a migration with `atomic = False`)."""

from django.db import migrations


class PostgresOrState(migrations.SeparateDatabaseAndState):
    """`state_operations` describe the change to Django; on PostgreSQL `postgres_forward` /
    `postgres_backward` make it, elsewhere the state operations themselves are run."""

    def __init__(self, *, state_operations, postgres_forward: str | list[str], postgres_backward: str | list[str]):
        super().__init__(state_operations=state_operations)
        self.postgres_forward = postgres_forward
        self.postgres_backward = postgres_backward

    def deconstruct(self):
        name, args, kwargs = super().deconstruct()
        return name, args, {**kwargs, "postgres_forward": self.postgres_forward,
                            "postgres_backward": self.postgres_backward}  # fmt: skip

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            _execute(schema_editor, self.postgres_forward)
            return
        for operation in self.state_operations:
            state = from_state.clone()
            operation.state_forwards(app_label, state)
            operation.database_forwards(app_label, schema_editor, from_state, state)
            from_state = state

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            _execute(schema_editor, self.postgres_backward)
            return
        states = [to_state]
        for operation in self.state_operations[:-1]:
            state = states[-1].clone()
            operation.state_forwards(app_label, state)
            states.append(state)
        for operation, before in zip(reversed(self.state_operations), reversed(states), strict=True):
            after = before.clone()
            operation.state_forwards(app_label, after)
            operation.database_backwards(app_label, schema_editor, after, before)


def _execute(schema_editor, sql: str | list[str]) -> None:
    for statement in [sql] if isinstance(sql, str) else sql:
        schema_editor.execute(statement)
