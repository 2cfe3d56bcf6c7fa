"""Alembic's environment: migrations run on the connection ``Store.migrate`` passes in,
inside its transaction (which holds the migration lock)."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
