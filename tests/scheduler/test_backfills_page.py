"""The Backfills page (the plugin in airflow_spreader/tools/ui) in a real headless Chromium, against a real
api-server with a real backfill under way, and users logging in through SimpleAuthManager's login form.

The page must show what ``airflow-spreader status NAME --json`` shows, and its Stop and Go buttons must stop
and resume the backfill; its JSON endpoints refuse requests without a valid token, and a viewer may read but
not stop. A screenshot is kept in artifacts/backfills-page.png. Needs a Chromium: Debian's (``apt-get install
-y chromium``; .ci/run installs it) or, where there is none on the PATH, the one ``make test`` downloads with
``playwright install chromium``. Run alone:
``.venv/bin/python -m pytest -m scheduler tests/scheduler/test_backfills_page.py`` (about 1.5 min on 2 cores).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa

from airflow_spreader.state.tracker import Tracker
from devtools.rest import AirflowClient
from devtools.stack import AirflowStack
from tests.airflow.conftest import redis_connection
from tests.conftest import TESTS

pytestmark = pytest.mark.scheduler

DAG_ID = "spreader_page"
ROWS, BATCH = 3000, 10


def chromium() -> str | None:
    """Debian's chromium on the PATH, else the one `playwright install chromium` downloaded, else None."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        bundled = playwright.chromium.executable_path
    return bundled if Path(bundled).exists() else None


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("SPREADER_ARTIFACTS", TESTS.parent / "artifacts"))
USERS = {"admin": ("admin", "admin-pw-for-tests"), "viewer": ("viewer", "viewer-pw-for-tests")}  # name: (role, pw)

DAG_FILE = textwrap.dedent(
    f'''
    """Airflow dag for tests/scheduler/test_backfills_page.py: a slow backfill whose top range fails.

    While the file named by SPREADER_PAGE_HOLD exists, batches wait before their work, so the test can
    read the same numbers twice.
    """
    import os
    import time

    import sqlalchemy as sa

    from airflow_spreader.dag_factory import backfill_dag


    def work(connection, begin_id, end_id):
        if begin_id <= {ROWS} <= end_id:
            raise RuntimeError("injected failure: the top range fails, for the Backfills page test")
        while os.path.exists(os.environ["SPREADER_PAGE_HOLD"]):
            time.sleep(0.2)
        return connection.execute(sa.text("UPDATE items SET counter = counter + 1 WHERE id BETWEEN :b AND :e"),
                                  {{"b": begin_id, "e": end_id}}).rowcount


    # max_split_depth=0: the failing top range stays one failed range, for the page to show
    dag = backfill_dag("{DAG_ID}", table="items", source_conn_id="spreader_page_source", work=work, retries=0,
                       max_split_depth=0,
                       initial_config={{"batch_size": {BATCH}, "duration": 10, "per_second_on_peak": 1.0,
                                        "per_second_off_peak": 1.0, "max_tasks_per_cycle": 2}})
    '''
)


NO_POOL_DAG_ID = "spreader_page_no_pool"
NO_POOL_DAG_FILE = textwrap.dedent(
    f'''
    """Airflow dag for tests/scheduler/test_backfills_page.py: its pool does not exist."""
    from airflow_spreader.dag_factory import backfill_dag

    dag = backfill_dag("{NO_POOL_DAG_ID}", table="items", source_conn_id="spreader_page_source",
                       work=lambda connection, begin_id, end_id: 0, control_retries=0)
    '''
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("page")
    (base / "dags").mkdir()
    (base / "dags" / "spreader_page_dag.py").write_text(DAG_FILE)
    (base / "dags" / "spreader_page_no_pool_dag.py").write_text(NO_POOL_DAG_FILE)
    (base / "passwords.json").write_text(json.dumps({name: pw for name, (_, pw) in USERS.items()}))
    engine = sa.create_engine(f"sqlite:///{base / 'source.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE items (id INTEGER PRIMARY KEY, counter INTEGER NOT NULL)"))
        conn.execute(sa.text("INSERT INTO items (id, counter) VALUES (:id, 0)"),
                     [{"id": i} for i in range(1, ROWS + 1)])
    engine.dispose()
    return {"dags": base / "dags", "passwords": base / "passwords.json", "source": base / "source.db",
            "hold": base / "hold"}


@pytest.fixture(scope="module")
def stack(airflow_stack_factory, files: dict[str, Path], redis_url: str) -> AirflowStack:  # type: ignore[no-untyped-def]
    return airflow_stack_factory(files["dags"], parallelism=8, env={
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",  # real users, a real login form
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{n}:{role}" for n, (role, _) in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(files["passwords"]),
        # A held batch waits inside its transaction, holding SQLite's writer lock (the ledger's): the other
        # task instance's batch must wait for it too, still in flight, rather than fail after SQLite's default
        # 5-s busy timeout (then failures go on arriving and the page and the console read different numbers).
        "AIRFLOW_CONN_SPREADER_PAGE_SOURCE": json.dumps({"conn_type": "sqlite", "host": str(files["source"]), "extra": {
            "sqlalchemy_url": f"sqlite:///{files['source']}?timeout=600"}}),
        # The plan reads its pool through the REST API: under a real auth manager it logs in with these.
        "AIRFLOW_CONN_AIRFLOW_API": json.dumps({"conn_type": "http", "login": "admin", "password": USERS["admin"][1]}),
        "AIRFLOW_CONN_REDIS_DEFAULT": redis_connection(redis_url),
        "REDIS_URL": redis_url,  # the plugin and the console read this Redis, as the tasks do
        "SPREADER_PAGE_HOLD": str(files["hold"]),
    })


def token(stack: AirflowStack, user: str) -> str:
    response = httpx.post(f"{stack.base_url}/auth/token", json={"username": user, "password": USERS[user][1]})
    response.raise_for_status()
    return str(response.json()["access_token"])


@pytest.fixture(scope="module")
def admin(stack: AirflowStack) -> Iterator[AirflowClient]:
    with AirflowClient(stack.base_url, token=token(stack, "admin")) as client:
        yield client


@pytest.fixture(scope="module")
def tracker(redis_url: str) -> Iterator[Tracker]:
    tracker = Tracker(DAG_ID, redis.Redis.from_url(redis_url))
    tracker.reset()
    yield tracker
    tracker.reset()


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 90.0,
               stack: AirflowStack | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                                 + (f"\n{stack.log_tails(20)}" if stack else ""))
        time.sleep(0.5)
    return value


def status_json(stack: AirflowStack) -> dict[str, Any]:
    """What the console says, run as an operator would, against the same Redis and metadata DB."""
    result = subprocess.run([str(stack.bin_dir / "airflow-spreader"), "status", DAG_ID, "--json"],
                            env=stack.environment(), capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_the_endpoints_refuse_requests_without_a_valid_token(stack: AirflowStack, tracker: Tracker) -> None:
    api = f"{stack.base_url}/spreader/api/backfills"
    for method, url in [("GET", api), ("GET", f"{api}/{DAG_ID}"), ("POST", f"{api}/{DAG_ID}/stop"),
                        ("POST", f"{api}/{DAG_ID}/go")]:
        assert httpx.request(method, url).status_code == 401, (method, url)
        bad = httpx.request(method, url, headers={"Authorization": "Bearer not-a-token"}, cookies={"_token": "x"})
        assert bad.status_code in (401, 403), (method, url, bad.status_code)
    assert not tracker.is_stopped()
    page = httpx.get(f"{stack.base_url}/spreader/backfills")  # the page itself is static: no data in it
    assert page.status_code == 200 and "static/backfills.js" in page.text


def test_with_the_auth_manager_on_the_plan_logs_in_to_check_the_pool_and_a_missing_one_fails_it(
        stack: AirflowStack, admin: AirflowClient, redis_url: str) -> None:
    """Without a token the check got 401 and went on: a missing pool then left the batches scheduled forever."""
    admin.wait_for_dag(NO_POOL_DAG_ID, timeout=120)
    assert admin.get_pool(NO_POOL_DAG_ID) is None
    run_id = admin.trigger(NO_POOL_DAG_ID)
    assert admin.wait_for_run(NO_POOL_DAG_ID, run_id, timeout=120) == "failed"
    logs = list((stack.home / "logs").glob(f"dag_id={NO_POOL_DAG_ID}/run_id={run_id}/task_id=plan/*.log"))
    assert logs, "no log for the plan task"
    assert f"pool '{NO_POOL_DAG_ID}' does not exist" in logs[0].read_text()
    assert not Tracker(NO_POOL_DAG_ID, redis.Redis.from_url(redis_url)).is_started()


def test_the_plugin_is_registered_with_its_menu_entry(admin: AirflowClient) -> None:
    plugins = {p["name"]: p for p in admin.get_json("/api/v2/plugins")["plugins"]}
    plugin = plugins["airflow_spreader"]
    assert [v["href"] for v in plugin["external_views"]] == ["/spreader/backfills"]
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/spreader"]
    assert admin.get_json("/api/v2/plugins/importErrors")["total_entries"] == 0  # e.g. no double registration
    assert admin.get_json("/api/v2/importErrors")["total_entries"] == 0


def test_the_page_shows_the_status_and_stop_and_go_work(
        stack: AirflowStack, admin: AirflowClient, tracker: Tracker, files: dict[str, Path]) -> None:
    executable = chromium()
    if executable is None:
        pytest.fail("no Chromium: install Debian's chromium (apt-get install -y chromium; .ci/run does it on CI) "
                    "or run `.venv/bin/python -m playwright install chromium` (make test does)", pytrace=False)
    from playwright.sync_api import sync_playwright

    lap = laps(stack)
    start_a_backfill_then_hold_it(stack, admin, tracker, files["hold"])
    lap("3 batches done, 1 failed; held still")
    a_viewer_may_read_but_not_stop(stack, tracker)

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            frame = log_in_and_open_the_page(page, stack)
            card = frame.locator(f'[data-backfill="{DAG_ID}"]')
            lap("logged in, page open")

            shown, cli = read_page_and_cli(stack, frame, tracker)
            assert cli["state"] == "running" and cli["failed_ranges"], cli
            same(shown, cli)
            assert frame.locator("svg[data-field=chart] rect.bar-rect").count() >= 1
            page.screenshot(path=str(ARTIFACTS / "backfills-page.png"), full_page=True)
            lap("page checked against the console")

            card.locator("button[data-action=stop]").click()
            wait_until(tracker.is_stopped, "the Stop button to stop the backfill")
            frame.wait_for_selector(f'[data-backfill="{DAG_ID}"] [data-field=state]:text-is("stopped")')
            shown, cli = read_page_and_cli(stack, frame, tracker)
            assert cli["state"] == "stopped" and cli["eta"]["state"] == "unknown", cli
            same(shown, cli)
            page.screenshot(path=str(ARTIFACTS / "backfills-page-stopped.png"), full_page=True)
            lap("stopped by the button, page checked again")

            files["hold"].unlink()  # batches already started finish; nothing new is planned while stopped
            cycles = tracker.progress().cycles
            card.locator("button[data-action=go]").click()
            wait_until(lambda: not tracker.is_stopped(), "the Go button to clear the stop flag")
            frame.wait_for_selector(f'[data-backfill="{DAG_ID}"] [data-field=state]:text-is("running")')
            wait_until(lambda: tracker.progress().cycles > cycles, "a new cycle after Go", stack=stack)
            done = tracker.progress().ids_done
            wait_until(lambda: tracker.progress().ids_done > done, "batches of the new cycle", stack=stack)
            lap("resumed by the button")
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "backfills-page-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    tracker.stop()  # leave nothing running behind


def start_a_backfill_then_hold_it(stack: AirflowStack, admin: AirflowClient, tracker: Tracker, hold: Path) -> None:
    """Trigger the backfill, let it do a few batches (its top range fails), then hold its batches still."""
    admin.wait_for_dag(DAG_ID, timeout=120)
    admin.set_pool(DAG_ID, 4)
    admin.trigger(DAG_ID)
    wait_until(lambda: (p := tracker.progress()).batches_done >= 3 and p.batches_failed >= 1,
               "3 batches done and the top range failed", stack=stack)
    hold.touch()  # batches now wait before their work: the numbers stay still
    wait_until(stable(tracker), "the numbers to settle")


def a_viewer_may_read_but_not_stop(stack: AirflowStack, tracker: Tracker) -> None:
    viewer = {"Authorization": f"Bearer {token(stack, 'viewer')}"}
    api = f"{stack.base_url}/spreader/api/backfills"
    seen = httpx.get(api, headers=viewer).json()["backfills"]
    # other tests' backfills may share this Redis: look at ours
    assert [b["can_edit"] for b in seen if b["backfill"] == DAG_ID] == [False]
    assert httpx.get(f"{api}/{DAG_ID}", headers=viewer).json()["progress"]["ids_done"] > 0
    for action in ("stop", "go"):  # both need edit access to the DAG
        assert httpx.post(f"{api}/{DAG_ID}/{action}", headers=viewer).status_code == 403
    assert not tracker.is_stopped()


def laps(stack: AirflowStack) -> Callable[[str], None]:
    """Print the time of each step (``-s`` shows them), after the stack's start-up timings."""
    start = time.monotonic()
    print(f"stack timings (s): {stack.timings}")

    def lap(what: str) -> None:
        print(f"{time.monotonic() - start:6.1f} s  {what}")

    return lap


def log_in_and_open_the_page(page: Any, stack: AirflowStack) -> Any:
    """Log in through the form, open Browse > Backfills in the UI; return the frame showing the page."""
    page.goto(f"{stack.base_url}/")
    page.wait_for_url("**/auth/login**", timeout=30_000)  # the UI sends us to SimpleAuthManager's form
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", USERS["admin"][1])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Browse").click(timeout=30_000)
    page.get_by_role("menuitem", name="Backfills").click()
    page.wait_for_url("**/plugin/spreader-backfills")
    frame = page.wait_for_selector("iframe", timeout=30_000).content_frame()  # the UI shows the page in a frame
    assert frame is not None and frame.url.endswith("/spreader/backfills"), frame and frame.url
    frame.locator(f'[data-backfill="{DAG_ID}"]').wait_for(timeout=30_000)
    return frame


def stable(tracker: Tracker) -> Callable[[], bool]:
    """A condition: the progress (every counter and timestamp) did not change over the last 3 s. The next
    cycle is planned while this one's batches are held, and its batches start: wait for those too."""
    last: list[Any] = [None, time.monotonic()]

    def check() -> bool:
        now = tracker.progress()
        if now != last[0]:
            last[:] = [now, time.monotonic()]
            return False
        return time.monotonic() - last[1] >= 3.0

    return check


def read_page(frame: Any) -> dict[str, Any]:
    """Refresh the page and read what it shows for the backfill."""
    frame.evaluate("window.spreaderRefresh()")
    card = frame.locator(f'[data-backfill="{DAG_ID}"]')

    def text(name: str) -> str:
        return str(card.locator(f"[data-field={name}]").inner_text()).strip()

    failed = [(row.locator("[data-field=range]").inner_text(), row.locator("[data-field=attempts]").inner_text())
              for row in card.locator("[data-field=failed-range]").all()]
    return {"state": text("state"), "ids_done": text("ids_done"), "total_ids": text("total_ids"),
            "rows_done": text("rows_done"), "batches": text("batches"), "failed": failed,
            "in_force": text("in_force").split(" = ")[0], "eta_text": text("eta"),
            "eta": card.locator("[data-field=eta]").get_attribute("data-value")}


def read_page_and_cli(stack: AirflowStack, frame: Any, tracker: Tracker) -> tuple[dict[str, Any], dict[str, Any]]:
    """The page and the console, read while the tracker did not move (checked before and after)."""
    def snapshot() -> tuple[Any, ...]:
        return tracker.progress(), tracker.failed_ranges()

    for _ in range(12):  # a cycle is planned every 10 s while the batches are held; a loaded machine reads slowly
        before = snapshot()
        cli = status_json(stack)
        shown = read_page(frame)
        if snapshot() == before:
            return shown, cli
        wait_until(stable(tracker), "the numbers to settle again")  # e.g. the next cycle was just planned
    raise AssertionError("the backfill kept moving")


def expected(cli: dict[str, Any]) -> dict[str, Any]:
    """What the page must show, from ``status --json``."""
    p, force, eta = cli["progress"], cli["in_force"], cli["eta"]
    return {"state": cli["state"], "ids_done": f"{p['ids_done']:,}", "total_ids": f"{p['total_ids']:,}",
            "rows_done": f"{p['rows_done']:,}",
            "batches": f"{p['batches_done']:,} done, {p['in_flight']:,} in flight, {p['batches_failed']:,} failed "
                       f"({p['ids_failed']:,} ids), {p['cycles']:,} cycle{'' if p['cycles'] == 1 else 's'}, "
                       f"{p['attempts_lost']:,} attempt{'' if p['attempts_lost'] == 1 else 's'} lost (lease ran out: "
                       "a task died or was killed)",
            "failed": [(f"{f['begin_id']}-{f['end_id']}", str(f["attempts"])) for f in cli["failed_ranges"]],
            "in_force": f"{'on' if force['on_peak'] else 'off'} peak: {force['per_second']:g} batches/s x "
                        f"{force['batch_size']:,} ids",
            "eta": eta["state"], "eta_text": None}


def same(shown: dict[str, Any], cli: dict[str, Any]) -> None:
    """The page shows the console's numbers; an ETA as a date when estimated, else its reason."""
    eta = cli["eta"]
    if eta["state"] == "estimated":  # the observed share of the configured rate moves with the clock: "at 78%"
        reason = re.sub(r"\d+%", "N%", eta["reason"])
        assert "(in " in shown["eta_text"] and re.sub(r"\d+%", "N%", shown["eta_text"]).endswith(reason), \
            (shown["eta_text"], eta["reason"])
    else:
        assert shown["eta_text"] == f"{'done' if eta['state'] == 'done' else 'none'}: {eta['reason']}"
    assert {**shown, "eta_text": None} == expected(cli)
