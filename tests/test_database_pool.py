"""On PostgreSQL a web process holds a bounded number of database connections, however many page
requests it serves (Django's pool; persistent connections are never reused under ASGI)."""

import urllib.request

import psycopg

PAGES = 60


def connections_to(database_url: str) -> int:
    """Connections to the database other than this one."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        return connection.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()[0]


def test_page_requests_share_a_bounded_set_of_connections(live_server_factory, postgres_server):
    server = live_server_factory(database_url=postgres_server, SWITCHBOARD_DB_POOL_SIZE="3")
    server.start_daphne()
    session = server.create_user("alice")
    counts = []
    for path in ("/", "/notifications/"):
        for _ in range(PAGES):
            request = urllib.request.Request(
                server.url + path, headers={"Cookie": f"sessionid={session}"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200
        counts.append(connections_to(postgres_server))
    # Daphne's pool holds at most 3; the rest are this test's own helpers that have closed.
    assert counts[0] <= 3 and counts[1] <= 3, counts
