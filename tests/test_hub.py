"""The course as a class uses it: a JupyterHub with real accounts, nbgrader's exchange, a
student's whole round trip in a browser, students kept apart, a small load test, and the
students' kit. Run once, as a group (``make hub-test``, and ``make test``); needs root.

The hub is laid out with ``course hub setup`` (the instructor's command) and run with the
hub's own configuration; every student action is taken as that student's Unix user, through
the browser or nbgrader's commands in that user's environment.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tarfile
import threading
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

import browser_util as bu
import hub_util as hu
from grader.hub import accounts, deploy, kit
from grader.hub.roster import RosterError, parse

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the hub tests make Unix accounts: run them as root")

LESSON = "01_tensors"
PORT = 8460
RESULTS = hu.ROOT / "artifacts" / "hub"


# ------------------------------------------------------------------ no hub needed

@pytest.mark.parametrize("text, problem", [
    ("username\nada\nbob\nada\n", "username 'ada' is already on line 2"),
    ("username\nAda Lovelace\n", "username 'Ada Lovelace' is not a valid login name"),
    ("username\nroot\n", "username 'root' is reserved"),
    ("username\nbad+name\n", "is not a valid login name"),
    ("name\nada\n", "the header must name a `username` column"),
    ("username,first_name\nada,Ada,Lovelace\n", "3 fields but the header has 2"),
    ("", "the file is empty"),
])
def test_a_bad_roster_says_what_is_wrong_and_creates_nothing(tmp_path, text, problem):
    with pytest.raises(RosterError) as caught:
        parse(text, "class.csv")
    assert problem in str(caught.value) and "nothing was created" in str(caught.value)
    # through the command: exit 2, the message, no folder, no account
    roster = tmp_path / "class.csv"
    roster.write_text(text + "nntnever\n" if text.startswith("username\n") else text)
    from grader.cli import main
    root = tmp_path / "hub"
    assert main(["hub", "setup", "--roster", str(roster), "--root", str(root), "--instructor", "nntnoone"]) == 2
    assert not root.exists() and not accounts.exists("nntnoone") and not accounts.exists("nntnever")


def test_every_problem_of_a_roster_is_listed_at_once():
    with pytest.raises(RosterError) as caught:
        parse("username\nada\n9lives\nada\nteacher\n", "class.csv", taken={"teacher"})
    assert [p.split(":")[0] for p in caught.value.problems] == ["line 3", "line 4", "line 5"]


def test_kit_holds_what_a_student_needs_and_no_secret(tmp_path):
    folder, archive = kit.write_kit(tmp_path)
    lessons = sorted(p.name for p in (hu.ROOT / "release").iterdir() if p.is_dir())
    assert sorted(p.name for p in (folder / "lessons").iterdir()) == lessons
    for lesson in lessons:
        assert (folder / "lessons" / lesson / f"{lesson}.ipynb").is_file()
    for needed in ("README.md", "pyproject.toml", "environment.yml", "grader/__init__.py", "grader/checks.py",
                   "data/mnist/train-images-idx3-ubyte.gz"):
        assert (folder / needed).is_file(), f"the kit lacks {needed}"
    for absent in ("source", "notebooks", "tests", "gradebook.db", ".git", "submitted", "autograded"):
        assert not (folder / absent).exists(), f"the kit holds {absent}"
    readme = (folder / "README.md").read_text()
    assert "pip install -e ." in readme and "jupyter lab lessons/01_tensors/01_tensors.ipynb" in readme
    # every guarded line of source/ searched for in every file (the folder and the archive's copy)
    secrets = kit.course_secrets()
    assert len(secrets) > 300, "the search would prove nothing: too few guarded lines found"
    assert kit.leaks(folder, secrets) == []
    unpacked = tmp_path / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    assert kit.leaks(unpacked / kit.NAME, secrets) == []
    assert sorted(p.relative_to(unpacked / kit.NAME) for p in (unpacked / kit.NAME).rglob("*")) == \
        sorted(p.relative_to(folder) for p in folder.rglob("*"))


def test_a_kit_that_would_leak_is_refused(tmp_path):
    repo = tmp_path / "repo"
    for name in ("release", "source", "grader", "data", "pyproject.toml", "environment.yml"):
        (shutil.copytree if (hu.ROOT / name).is_dir() else shutil.copyfile)(hu.ROOT / name, repo / name)
    line, (lesson, kind) = next((l, w) for l, w in kit.course_secrets(repo).items() if w[1] == "hidden test")
    (repo / "grader" / "leaky.py").write_text(f"def copied():\n    {line}\n")
    with pytest.raises(kit.KitLeak, match=lesson):
        kit.write_kit(tmp_path / "out", repo)
    assert not (tmp_path / "out" / kit.NAME).exists()


# ------------------------------------------------------------------ the hub

@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    root = Path("/srv") / f"nn-course-test-{os.getpid()}"
    roster = tmp_path_factory.mktemp("roster") / "class.csv"
    roster.write_text(hu.roster_text())
    started = time.perf_counter()
    from grader.cli import main
    assert main(["hub", "setup", "--roster", str(roster), "--root", str(root), "--instructor", hu.INSTRUCTOR,
                 "--port", str(PORT)]) == 0
    setup_seconds = time.perf_counter() - started
    hub = deploy.Hub.load(root)
    proc = hu.start_hub(hub, tmp_path_factory.mktemp("hublog") / "hub.log")
    hub.setup_seconds = setup_seconds
    try:
        yield hub
    finally:
        hu.stop_hub(proc)
        accounts.remove(hub.students, hub.group)
        accounts.remove([hub.instructor], f"{hub.course_id}-instructors")
        shutil.rmtree(root, ignore_errors=True)


def record(name: str, values: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(values, indent=1))
    print(f"\n{name}: {json.dumps(values)}")


def student(hub, user: str, script: str, check: bool = True):
    return deploy.as_user(hub, user, "student", script, f"{user}: {script[:40]}", check=check)


def instructor(hub, script: str, check: bool = True):
    return deploy.as_instructor(hub, script, f"instructor: {script[:40]}", check=check)


def hand_in(hub, user: str, skip: set[str] = frozenset()) -> None:
    """Fetch (if needed), do the lesson (every solution cell but ``skip``), submit: as ``user``."""
    home = Path(os.path.expanduser(f"~{user}"))
    if not (home / LESSON).exists():
        student(hub, user, f"nbgrader fetch_assignment {LESSON}")
    hu.give(user, hu.solved(home / LESSON / f"{LESSON}.ipynb", hub.course_dir / "source" / LESSON / f"{LESSON}.ipynb",
                            skip), home / LESSON / f"{LESSON}.ipynb")
    student(hub, user, f"nbgrader submit {LESSON}")


def released(hub) -> None:
    """Lesson 01 is in the exchange (each test may run alone)."""
    if not (hub.exchange / hub.course_id / "outbound" / LESSON).is_dir():
        instructor(hub, f"nbgrader release_assignment {LESSON}")


def auto_points(source: Path) -> float:
    return sum(c.metadata["nbgrader"]["points"] for c in nbformat.read(source, as_version=4).cells
               if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code")


def login(page, hub, user: str) -> None:
    page.goto(f"http://127.0.0.1:{hub.port}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", deploy.passwords(hub)[user])
    page.click("#login_submit")
    page.wait_for_url("**/lab**", timeout=180_000)
    page.wait_for_selector(".lm-MenuBar-itemLabel:text('Nbgrader')", timeout=180_000)


def open_assignments(page) -> None:
    page.click(".lm-MenuBar-itemLabel:text('Nbgrader')")
    page.click(".lm-Menu-itemLabel:text('Assignment List')")
    page.wait_for_selector("#released_assignments_list", timeout=60_000)


def fill_cell(page, index: int, text: str, markdown: bool = False) -> None:
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.scroll_into_view_if_needed()
    if markdown:
        cell.dblclick()
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(text)
    page.keyboard.press("Escape")


def test_a_term_round_trip_through_the_hub(hub):
    """Release, fetch in the browser, write, validate, submit (a classmate at the same time, one
    late, one twice), collect, autograde, release feedback, fetch it in the browser and see the score."""
    source = hub.course_dir / "source" / LESSON / f"{LESSON}.ipynb"
    full = auto_points(source)
    timings, t0 = {}, time.perf_counter()
    instructor(hub, f"nbgrader release_assignment {LESSON}")
    timings["release"] = time.perf_counter() - t0
    answers = hu.solution_code_cells(source)
    release_cells = nbformat.read(hub.course_dir / "release" / LESSON / f"{LESSON}.ipynb", as_version=4).cells
    base = f"http://127.0.0.1:{hub.port}"
    with bu.chromium() as browser:
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        t = time.perf_counter()
        login(page, hub, "nnt01")
        timings["login_to_lab"] = time.perf_counter() - t
        open_assignments(page)
        page.locator("#released_assignments_list .list_item", has_text=LESSON).locator("button:text('Fetch')").click()
        page.wait_for_selector(f"#fetched_assignments_list .list_item:has-text('{LESSON}')", timeout=60_000)
        page.screenshot(path=str(bu.screenshot_path("hub_assignments_fetched")))
        page.goto(f"{base}/user/nnt01/lab/tree/{LESSON}/{LESSON}.ipynb")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        for index, cell in enumerate(release_cells):
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution"):
                written = cell.cell_type == "markdown"
                fill_cell(page, index, "Kaiming's fan is the number of inputs of each unit." if written
                          else answers[meta["grade_id"]], markdown=written)
        page.keyboard.press("Control+s")
        page.wait_for_timeout(1500)
        page.click(".jp-Toolbar button:has-text('Validate'), .jp-ToolbarButtonComponent:has-text('Validate')")
        dialog = page.wait_for_selector(".jp-Dialog", timeout=300_000)
        page.wait_for_function("() => !document.querySelector('.jp-Dialog').innerText.includes('Validating')",
                               timeout=300_000)
        validated = dialog.inner_text()
        page.screenshot(path=str(bu.screenshot_path("hub_validated")))
        assert "Success" in validated or "passes" in validated, f"validation in the browser: {validated[:800]}"
        page.keyboard.press("Escape")
        # submit from the Assignments panel while a classmate submits from a terminal
        open_assignments(page)
        page.wait_for_selector(f"#fetched_assignments_list .list_item:has-text('{LESSON}')", timeout=60_000)
        home2 = Path(os.path.expanduser("~nnt02"))
        student(hub, "nnt02", f"nbgrader fetch_assignment {LESSON}")
        hu.give("nnt02", hu.solved(home2 / LESSON / f"{LESSON}.ipynb", source), home2 / LESSON / f"{LESSON}.ipynb")
        classmate = threading.Thread(target=student, args=(hub, "nnt02", f"nbgrader submit {LESSON}"))
        classmate.start()
        page.locator("#fetched_assignments_list .list_item", has_text=LESSON).locator("button:text('Submit')").click()
        page.wait_for_selector(f"#submitted_assignments_list .list_item:has-text('{LESSON}')", timeout=120_000)
        classmate.join()
        page.screenshot(path=str(bu.screenshot_path("hub_assignments_submitted")))
        # one hands in twice: first the untouched release, then the work (the latest counts)
        student(hub, "nnt04", f"nbgrader fetch_assignment {LESSON} && nbgrader submit {LESSON}")
        time.sleep(1.1)
        hand_in(hub, "nnt04")
        # the due date passes; one hands in after it
        due = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)).strftime(
            "%Y-%m-%d %H:%M:%S.%f UTC")
        instructor(hub, f"nbgrader db assignment add {LESSON} --duedate='{due}'")
        time.sleep(2)
        hand_in(hub, "nnt03")
        # the instructor's side
        t = time.perf_counter()
        collected = instructor(hub, f"nbgrader collect {LESSON}")
        graded = instructor(hub, f"course autograde {LESSON}")
        instructor(hub, f"course feedback {LESSON} && nbgrader release_feedback {LESSON}")
        timings["collect_autograde_feedback"] = time.perf_counter() - t
        assert "refused" not in collected.stdout + collected.stderr
        # the student fetches the feedback in the browser and opens it
        page.click("#refresh_assignments_list")
        page.wait_for_selector(f"#submitted_assignments_list .list_item:has-text('{LESSON}') button:text('Fetch Feedback')", timeout=60_000)
        item = page.locator("#submitted_assignments_list .list_item", has_text=LESSON)
        item.locator("button:text('Fetch Feedback')").click()
        page.wait_for_timeout(3000)
        feedback = sorted(Path(os.path.expanduser("~nnt01"), LESSON, "feedback").glob("*/*.html"))
        assert len(feedback) == 1, "the student's fetched feedback"
        page.screenshot(path=str(bu.screenshot_path("hub_feedback_fetched")))
        relative = feedback[0].relative_to(Path(os.path.expanduser("~nnt01")))
        page.goto(f"{base}/user/nnt01/files/{urllib.request.quote(str(relative))}")
        page.wait_for_selector("text=Score", timeout=60_000)
        shown = page.inner_text("body")
        page.screenshot(path=str(bu.screenshot_path("hub_feedback")), full_page=False)
    timings["round_trip"] = time.perf_counter() - t0

    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{hub.course_dir / 'gradebook.db'}", hub.course_id) as gb:
        got = {s: gb.find_submission(LESSON, s) for s in ("nnt01", "nnt02", "nnt03", "nnt04")}
        scores = {s: (sub.score, sub.max_score, sub.total_seconds_late) for s, sub in got.items()}
    assert {s: v[0] for s, v in scores.items()} == {s: full for s in scores}, scores
    assert scores["nnt03"][2] > 0, "the submission after the due date is marked late"
    assert all(scores[s][2] == 0 for s in ("nnt01", "nnt02", "nnt04")), scores
    assert f"{full:g}" in shown and "Score" in shown
    hidden = [line for line, (lesson, kind) in kit.course_secrets().items() if lesson == LESSON and kind == "hidden test"]
    assert hidden and not [line for line in hidden if line in feedback[0].read_text()], "feedback shows a hidden test"
    timings["graded"] = graded.stdout.strip().splitlines()[-1:]
    record("round_trip", {k: (round(v, 1) if isinstance(v, float) else v) for k, v in timings.items()}
           | {"setup_seconds": round(hub.setup_seconds, 1)})


# ------------------------------------------------------------------ students kept apart

def denied(hub, user: str, script: str) -> str:
    """Run ``script`` as ``user``; it must fail; returns what it printed."""
    done = student(hub, user, script, check=False)
    assert done.returncode != 0, f"{user} could: {script}\n{done.stdout[-500:]}"
    return done.stdout + done.stderr


def test_students_are_kept_apart(hub):
    """Each check is a real attempt by a student's account (nnt05, who has not handed in)."""
    released(hub)
    hand_in(hub, "nnt06")                                 # a classmate's submission that nnt05 goes after
    course, exchange = hub.course_dir, hub.exchange / hub.course_id
    other_home = Path(os.path.expanduser("~nnt06"))
    for path in (course / "source" / LESSON / f"{LESSON}.ipynb", course / "gradebook.db",
                 course / "nbgrader_config.py", hub.root / "private" / "passwords.csv",
                 hu.ROOT / "source" / LESSON / f"{LESSON}.ipynb", hu.ROOT / "notebooks" / f"{LESSON}.py",
                 other_home / LESSON / f"{LESSON}.ipynb"):
        assert "Permission denied" in denied(hub, "nnt05", f"cat '{path}' > /dev/null"), path
    for folder in (course, other_home, exchange / "inbound", exchange / "feedback", hu.ROOT):
        assert "Permission denied" in denied(hub, "nnt05", f"ls '{folder}'"), folder
    # nbgrader's own listing of submissions shows nobody else's
    listed = student(hub, "nnt05", f"nbgrader list --inbound {LESSON}", check=False)
    assert "nnt06" not in listed.stdout + listed.stderr
    # the course's folder in the exchange cannot be replaced by a fake one
    assert "Operation not permitted" in denied(hub, "nnt05", f"mv '{exchange}' '{hub.exchange}/moved'")
    denied(hub, "nnt05", f"rm -rf '{exchange}/outbound'")
    assert (exchange / "outbound" / LESSON).is_dir()
    # a student's server has no Formgrader (the instructor's does)
    api = hu.Api(hub)
    api.start_server("nnt05")
    token = api.user_token("nnt05")
    request = urllib.request.Request(f"{api.base}/user/nnt05/formgrader", headers={"Authorization": f"token {token}"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    assert caught.value.code == 404
    api.call("DELETE", "/hub/api/users/nnt05/server")


def test_a_student_cannot_hand_in_for_someone_else(hub):
    """nbgrader's own submit takes ``--student``; the trusted collect refuses what it produces, and a
    submission backdated by hand, or changed after it was handed in, is dated by the filesystem."""
    released(hub)
    home = Path(os.path.expanduser("~nnt05"))
    student(hub, "nnt05", f"rm -rf {LESSON} && nbgrader fetch_assignment {LESSON}")
    student(hub, "nnt05", f"nbgrader submit {LESSON} --student nnt07")           # pretends to be nnt07
    backdated = f"nnt05+{LESSON}+2000-01-01 00:00:00.000000 UTC+forged"
    student(hub, "nnt05", f"mkdir '{hub.exchange / hub.course_id / 'inbound' / backdated}' && "
                          f"cp {home / LESSON / (LESSON + '.ipynb')} '{hub.exchange / hub.course_id / 'inbound' / backdated}/' && "
                          f"echo '2000-01-01 00:00:00.000000 UTC' > '{hub.exchange / hub.course_id / 'inbound' / backdated}/timestamp.txt'")
    out = instructor(hub, f"nbgrader collect --update {LESSON}")
    log = out.stdout + out.stderr
    assert "claims to be nnt07's but is owned by nnt05" in log, log[-2000:]
    assert not (hub.course_dir / "submitted" / "nnt07").exists()
    assert "re-dated" in log and "forged" in log
    stamp = (hub.course_dir / "submitted" / "nnt05" / LESSON / "timestamp.txt").read_text()
    assert not stamp.startswith("2000"), f"the backdated submission kept its claimed time: {stamp}"
    # the earlier graded students are untouched by the collect
    assert (hub.course_dir / "submitted" / "nnt01" / LESSON / f"{LESSON}.ipynb").is_file()


def test_bad_submissions_get_a_clear_message_and_change_nothing(hub):
    released(hub)
    inbound = hub.exchange / hub.course_id / "inbound"
    before = sorted(p.name for p in inbound.iterdir())
    home = Path(os.path.expanduser("~nnt08"))
    student(hub, "nnt08", f"nbgrader fetch_assignment {LESSON} && mv {LESSON}/{LESSON}.ipynb {LESSON}/mine.ipynb")
    refused = student(hub, "nnt08", f"nbgrader submit {LESSON}", check=False)
    assert refused.returncode != 0
    message = refused.stdout + refused.stderr
    assert f"{LESSON}.ipynb" in message and ("missing" in message.lower() or "expected" in message.lower()), message
    assert sorted(p.name for p in inbound.iterdir()) == before, "a refused submission reached the exchange"
    # an extra large file is left out, with a warning; the notebook is handed in
    student(hub, "nnt08", f"mv {LESSON}/mine.ipynb {LESSON}/{LESSON}.ipynb && "
                          f"head -c {(deploy.MAX_FILE_KB + 5_000) * 1024} /dev/urandom > {LESSON}/weights.bin")
    done = student(hub, "nnt08", f"nbgrader submit {LESSON}")
    assert "weights.bin" in done.stdout + done.stderr, done.stdout + done.stderr
    new = sorted(set(p.name for p in inbound.iterdir()) - set(before))
    assert len(new) == 1 and new[0].startswith(f"nnt08+{LESSON}+")
    assert (inbound / new[0] / f"{LESSON}.ipynb").is_file() and not (inbound / new[0] / "weights.bin").exists()
    assert (home / LESSON / "weights.bin").is_file(), "the student's own file is kept"


# ------------------------------------------------------------------ load

def test_ten_students_at_once(hub):
    """Ten students' servers run lesson 01 at the same time (each in a kernel driven through the
    hub's proxy); meanwhile the hub serves pages and the exchange serves a fetch."""
    released(hub)
    api = hu.Api(hub)
    source = hub.course_dir / "source" / LESSON / f"{LESSON}.ipynb"
    cells = [c.source for c in hu.solved(hub.course_dir / "release" / LESSON / f"{LESSON}.ipynb", source).cells
             if c.cell_type == "code"]
    users = hub.students[:10]
    t = time.perf_counter()
    starters = [threading.Thread(target=api.start_server, args=(u,)) for u in users]
    for s in starters:
        s.start()
    for s in starters:
        s.join()
    spawn_all = time.perf_counter() - t
    tokens = {u: api.user_token(u) for u in users}
    results, errors = {}, {}

    def work(user):
        try:
            results[user] = hu.run_in_kernel(api.base, user, tokens[user], cells)
        except Exception as err:                       # reported below
            errors[user] = repr(err)

    workers = [threading.Thread(target=work, args=(u,)) for u in users]
    t = time.perf_counter()
    for w in workers:
        w.start()
    pages, fetches = [], []
    time.sleep(2)
    while any(w.is_alive() for w in workers) and len(pages) < 20:
        s = time.perf_counter()
        status, _ = api.call("GET", "/hub/api/users/nnt09")
        with urllib.request.urlopen(f"{api.base}/hub/login", timeout=60) as response:
            assert response.status == 200 and status == 200
            response.read()
        pages.append(time.perf_counter() - s)
        if not fetches:
            s = time.perf_counter()
            student(hub, "nnt10", f"rm -rf {LESSON} && nbgrader fetch_assignment {LESSON}")
            fetches.append(time.perf_counter() - s)
        time.sleep(1)
    for w in workers:
        w.join()
    run_all = time.perf_counter() - t
    assert not errors, errors
    failed = {u: [r for r in rs if r["status"] != "ok"] for u, rs in results.items()}
    assert not any(failed.values()), failed
    assert len(results) == 10 and all(len(rs) == len(cells) for rs in results.values())
    assert pages and fetches, "the hub was never asked anything while the students worked"
    for u in users:
        api.call("DELETE", f"/hub/api/users/{u}/server")
    record("load", {"students": 10, "spawn_all_s": round(spawn_all, 1), "run_lesson_01_all_s": round(run_all, 1),
                    "per_student_s": sorted(round(sum(r["seconds"] for r in rs), 1) for rs in results.values()),
                    "page_load_s": {"median": round(sorted(pages)[len(pages) // 2], 2), "max": round(max(pages), 2),
                                    "count": len(pages)},
                    "fetch_s": round(fetches[0], 2)})
