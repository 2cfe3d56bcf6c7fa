"""The throwaway PostgreSQL server of tests/postgres.py: it answers, isolates, stays local."""

from __future__ import annotations

import socket

import pytest

from tests.postgres import PostgresServer


def _dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


class TestPostgresServer:
    def test_answers_on_a_fresh_database(
        self, postgres_server: PostgresServer, postgres_url: str
    ) -> None:
        """psql reaches the per-test database at the URL's host and port and runs a query."""
        assert postgres_url.startswith(
            f"postgresql+psycopg://postgres@127.0.0.1:{postgres_server.port}/"
        )
        name = _dbname(postgres_url)
        assert postgres_server.psql(name, "select 1") == "1"
        assert postgres_server.psql(name, "select current_database()") == name
        assert postgres_server.psql(name, "show server_encoding") == "UTF8"
        # The speed settings are in force.
        assert postgres_server.psql(name, "show fsync") == "off"
        assert postgres_server.psql(name, "show synchronous_commit") == "off"
        assert postgres_server.psql(name, "show full_page_writes") == "off"

    def test_databases_are_separate(
        self, postgres_server: PostgresServer, postgres_url: str
    ) -> None:
        """A table made in one database is not in another, and a second URL names another db."""
        first = _dbname(postgres_url)
        second_url = postgres_server.create_database("test_fixture_second")
        try:
            second = _dbname(second_url)
            assert second != first
            postgres_server.psql(first, "create table t (x int); insert into t values (42)")
            assert postgres_server.psql(first, "select x from t") == "42"
            assert postgres_server.psql(second, "select to_regclass('t') is null") == "t"
        finally:
            postgres_server.drop_database("test_fixture_second")
        listed = postgres_server.psql("postgres", "select datname from pg_database")
        assert first in listed.split()
        assert "test_fixture_second" not in listed.split()

    def test_listens_on_127_0_0_1_only(self, postgres_server: PostgresServer) -> None:
        """listen_addresses is 127.0.0.1; other loopback addresses are refused."""
        assert postgres_server.psql("postgres", "show listen_addresses") == "127.0.0.1"
        port = postgres_server.port
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        # Only loopback addresses are tried: 127.0.0.2 reaches this machine but not the
        # server, which is bound to 127.0.0.1 alone; ::1 is not listened on either.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.2", port), timeout=5).close()
        if socket.has_ipv6:
            with pytest.raises(OSError):
                socket.create_connection(("::1", port), timeout=5).close()

    def test_psycopg_connects(self, postgres_url: str) -> None:
        """The URL, minus SQLAlchemy's driver suffix, works with psycopg 3 (when installed)."""
        psycopg = pytest.importorskip("psycopg")
        conninfo = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(conninfo, connect_timeout=10) as conn:
            row = conn.execute("select current_database(), inet_server_addr()::text").fetchone()
        assert row is not None
        assert row[0] == _dbname(postgres_url)
        assert row[1].split("/")[0] == "127.0.0.1"
