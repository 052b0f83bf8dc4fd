"""What the hub tests share: a course hub on loopback with real Unix accounts, people acting
through it (as their own Unix user, or through the hub's REST API), and a kernel driven over the
hub's proxy.

The hub is laid out by ``course hub setup`` exactly as an instructor would, in a folder under
``/srv`` (every account must be able to reach the shared environment), on ports of its own,
with accounts named ``nnt...`` that are removed at the end. It needs root (it makes accounts).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import nbformat

import browser_util as bu

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from grader.hub import accounts, deploy  # noqa: E402

INSTRUCTOR = "nntteach"
STUDENTS = [f"nnt{i:02d}" for i in range(1, 11)]


def roster_text(students=STUDENTS) -> str:
    return "username,first_name,last_name,email\n" + "".join(
        f"{s},Student,{s[3:]},{s}@example.org\n" for s in students)


def start_hub(hub: deploy.Hub, log: Path) -> subprocess.Popen:
    argv, env = deploy.start_command(hub)
    proc = subprocess.Popen(argv, env=env, cwd=hub.root / "hub", stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the hub exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{hub.port}/hub/login", timeout=5)
            return proc
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    raise RuntimeError(f"the hub did not answer in 90 s:\n{log.read_text()[-3000:]}")


def stop_hub(proc: subprocess.Popen) -> None:
    bu.end_group(proc, grace=30)


class Api:
    """The hub's REST API with the course's service token (``private/api_token``)."""

    def __init__(self, hub: deploy.Hub):
        self.base = f"http://127.0.0.1:{hub.port}"
        self.token = (hub.root / "private" / "api_token").read_text().strip()

    def call(self, method: str, path: str, body=None, token: str | None = None, timeout: float = 60):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Authorization": f"token {token or self.token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read().decode()
            return response.status, (json.loads(text) if text.strip().startswith(("{", "[")) else text)

    def start_server(self, user: str, wait: float = 180) -> None:
        try:
            self.call("POST", f"/hub/api/users/{user}/server")
        except urllib.error.HTTPError as err:
            if err.code != 400:                      # 400: already running
                raise
        deadline = time.time() + wait
        while time.time() < deadline:
            _, info = self.call("GET", f"/hub/api/users/{user}")
            server = info.get("servers", {}).get("", {})
            if server.get("ready"):
                return
            time.sleep(1)
        raise TimeoutError(f"{user}'s server did not start in {wait} s")

    def user_token(self, user: str) -> str:
        _, reply = self.call("POST", f"/hub/api/users/{user}/tokens", {"note": "test", "expires_in": 3600})
        return reply["token"]


def run_in_kernel(base: str, user: str, token: str, sources: list[str], timeout: float = 600) -> list[dict]:
    """Start a kernel in ``user``'s server through the hub's proxy, run ``sources`` in it, shut it
    down; returns per cell ``{"status", "seconds", "error"}``."""
    import websocket

    def rest(method, path, body=None):
        request = urllib.request.Request(f"{base}/user/{user}/api{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"token {token}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read().decode()
            return json.loads(text) if text else None

    kernel = rest("POST", "/kernels", {"name": "python3"})
    ws = websocket.create_connection(
        f"{base.replace('http', 'ws')}/user/{user}/api/kernels/{kernel['id']}/channels", timeout=timeout,
        header=[f"Authorization: token {token}"])
    results = []
    try:
        for source in sources:
            msg_id = uuid.uuid4().hex
            ws.send(json.dumps({"header": {"msg_id": msg_id, "msg_type": "execute_request", "username": user,
                                           "session": uuid.uuid4().hex, "version": "5.3"},
                                "parent_header": {}, "metadata": {}, "channel": "shell",
                                "content": {"code": source, "silent": False, "store_history": True,
                                            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
            started, error = time.time(), ""
            while True:
                reply = json.loads(ws.recv())
                if reply.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if reply["msg_type"] == "error":
                    error = f"{reply['content']['ename']}: {reply['content']['evalue']}"
                if reply["msg_type"] == "execute_reply":
                    results.append({"status": reply["content"]["status"], "seconds": time.time() - started,
                                    "error": error})
                    break
    finally:
        ws.close()
        rest("DELETE", f"/kernels/{kernel['id']}")
    return results


def solved(release: Path, source: Path, skip: set[str] = frozenset()) -> nbformat.NotebookNode:
    """The release notebook with every solution cell filled in from the source (a written answer gets
    a sentence), as a student who did the work would hand it in; cells in ``skip`` stay as released."""
    nb = nbformat.read(release, as_version=4)
    answers = solution_code_cells(source)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and meta.get("grade_id") not in skip:
            cell.source = "My answer, in my own words." if cell.cell_type == "markdown" else answers[meta["grade_id"]]
    return nb


def give(user: str, nb: nbformat.NotebookNode, path: Path) -> None:
    """Write a notebook into a user's home as theirs."""
    nbformat.write(nb, path)
    accounts.chown_tree(path, user)


def solution_code_cells(source: Path) -> dict[str, str]:
    """grade_id -> the code a student types for each solution cell (markers removed)."""
    out = {}
    for cell in nbformat.read(source, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and cell.cell_type == "code":
            out[meta["grade_id"]] = "\n".join(line for line in cell.source.splitlines()
                                              if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
    return out
