"""The database goes away and comes back: clients are told to retry, and the running gateway
recovers by itself. The outage is real: a PostgreSQL server this test starts, stops (as an
operator's restart does) and starts again on the same port, while a CalDAV ``serve`` process
and an SMTP ``serve`` process keep running."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest
import requests
from caldav_peer import Gateway, Rep, event, free_port, new_rep, start_gateway, stop_gateway
from peers.bcc_listener import CONFIG_NAME, REP, eml, seed_world, send, settle, write_config
from peers.gateway_process import serve
from peers.postgres_server import private_postgres
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import OperationalError

from gateway.db import Store
from gateway.diary_types import create_type
from gateway.models import Activity
from gateway.web import outage

MAIL = "smtp/quote_with_attachments.eml"
PROPFIND = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop>'
            "</D:propfind>")
# Answers during the outage come at once (measured: 0.01-0.05 s); a busy machine gets room.
FAST_SECONDS = 5.0
RECOVERY_SECONDS = 60.0


def caldav_requests(gateway: Gateway, rep: Rep) -> dict[str, requests.Response]:
    """What a syncing client sends: discovery, a listing, a read and a write."""
    calendar = f"{gateway.url}{rep.username}/meeting/"
    sent = {
        "PROPFIND principal": requests.request("PROPFIND", f"{gateway.url}{rep.username}/",
                                               data=PROPFIND, auth=rep.auth, timeout=30,
                                               headers={"Depth": "1"}),
        "PROPFIND calendar": requests.request("PROPFIND", calendar, data=PROPFIND,
                                              auth=rep.auth, timeout=30, headers={"Depth": "1"}),
        "GET event": requests.get(calendar + "before.ics", auth=rep.auth, timeout=30),
        "PUT event": requests.put(calendar + f"new-{time.monotonic_ns()}.ics", auth=rep.auth,
                                  data=event(f"new-{time.monotonic_ns()}@test").encode(),
                                  timeout=30, headers={"Content-Type": "text/calendar"}),
    }
    return sent


def activities(store: Store) -> int:
    with store.reading() as session:
        return session.scalar(select(func.count()).select_from(Activity)) or 0


@pytest.mark.postgres
def test_a_database_outage_is_503_and_451_and_the_gateway_recovers_by_itself(
    tmp_path: Path,
) -> None:
    with private_postgres(free_port()) as server, contextlib.ExitStack() as cleanup:
        url = server.create_database("crm")
        store = Store(url)
        cleanup.callback(store.dispose)
        store.upgrade()
        with store.transaction() as session:
            create_type(session, "Meeting", color="#3A87AD", syncable=True)
        world = seed_world(store)
        synced, fresh = new_rep(store), new_rep(store)  # fresh logs in only during the outage
        (tmp_path / "http").mkdir()
        caldav = start_gateway(url, tmp_path / "http")
        cleanup.callback(stop_gateway, caldav)
        write_config(tmp_path / "smtp", url, dkim_dns="")
        with serve(tmp_path / "smtp" / CONFIG_NAME, tmp_path / "smtp.log") as smtp:
            calendar = f"{caldav.url}{synced.username}/meeting/"
            assert requests.put(calendar + "before.ics", data=event("before@test").encode(),
                                auth=synced.auth, timeout=30).status_code == 201
            assert send(smtp.port, eml(MAIL), mail_from=REP,
                        rcpt_tos=[world.rep]).final == 250
            settle(store)

            server.stop()
            for rep in (synced, fresh):
                for what, answer in caldav_requests(caldav, rep).items():
                    assert answer.status_code == 503, (what, answer.status_code)
                    assert int(answer.headers["Retry-After"]) > 0, what
                    assert "database" in answer.text
                    assert answer.elapsed.total_seconds() < FAST_SECONDS, what
            health = requests.get(caldav.url + "healthz", timeout=30)
            assert health.status_code == 503
            assert send(smtp.port, eml(MAIL), mail_from=REP,
                        rcpt_tos=[world.rep]).final == 451

            server.start()
            deadline = time.monotonic() + RECOVERY_SECONDS
            while requests.get(caldav.url + "healthz", timeout=30).status_code != 200:
                assert time.monotonic() < deadline, "no recovery"
                time.sleep(0.2)
            for rep in (synced, fresh):
                answers = caldav_requests(caldav, rep)
                assert answers["PROPFIND calendar"].status_code == 207
                assert answers["PUT event"].status_code == 201
            assert "UID:before@test" in caldav_requests(caldav, synced)["GET event"].text
            assert send(smtp.port, eml(MAIL), mail_from=REP,
                        rcpt_tos=[world.rep]).final == 250
            settle(store)
            assert activities(store) == 1  # the resent mail is the same activity
            # Neither process was restarted.
            assert caldav.process.poll() is None and smtp.process.poll() is None


@pytest.mark.parametrize(("folder", "query", "unavailable"), [
    ("missing-folder", "SELECT 1", True),  # the file cannot be opened
    ("", "SELECT * FROM no_such_table", False),  # a mistake, not an outage: still a 500
])
def test_only_an_unreachable_sqlite_file_counts_as_an_outage(
    tmp_path: Path, folder: str, query: str, unavailable: bool
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / folder / 'crm.sqlite3'}")
    outage.watch(engine)
    outage.begin()
    with pytest.raises(OperationalError, match=r"unable to open|no such table"), \
            engine.connect() as connection:
        connection.execute(text(query))
    assert outage.failed() is unavailable
    engine.dispose()
