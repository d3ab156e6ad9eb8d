"""Database pieces shared by the apps: the PostgreSQL backend (base), hand-written hot statements
(statements) and migration operations (migration_ops)."""

# For a foreign key to a parent that every row of a hot table shares (a viral link, its campaign, the
# pixel): no database constraint. PostgreSQL checks a foreign key by locking the parent row (FOR KEY
# SHARE), so every click wrote a lock into the same link and campaign rows, which became a MultiXact as
# soon as two clicks overlapped: 16,000 clicks made MultiXact pages and 11 % more WAL a click than
# without the constraints (bench/README.md, stop 19). The ORM still enforces on_delete (PROTECT, CASCADE),
# and rows are only deleted through it.
HOT_PARENT = {"db_constraint": False}
