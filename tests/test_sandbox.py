"""The sandbox around a grading kernel: what a real kernel started by the grader can see and do."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT
from grader.sandbox import Sandbox, parse_size
from grader.sandbox.bwrap import Confinement, SandboxUnavailable, command, exposed_paths
from grader.sandbox.kernel import SandboxKernelManager

PROBE = r'''
import json, os, resource, socket, subprocess, sys, time
found = {"uid": os.getuid(), "euid": os.geteuid(), "cwd": os.getcwd(), "pids": sorted(p for p in os.listdir("/proc") if p.isdigit()),
         "caps": open("/proc/self/status").read().split("CapEff:")[1].split()[0]}
found["course"] = os.path.exists(COURSE)
found["secret"] = os.path.exists(SECRET)
found["home_files"] = sorted(os.listdir("."))
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=1)
    found["loopback"] = "connected"
except OSError as err:
    found["loopback"] = type(err).__name__
try:
    open("/work-grader-probe", "w")
    found["root_write"] = "written"
except OSError as err:
    found["root_write"] = type(err).__name__
try:
    with open("filler.bin", "wb") as f:
        while True:
            f.write(b"x" * (1 << 20))
except OSError as err:
    found["disk"] = err.errno
found["filler_mb"] = os.path.getsize("filler.bin") // (1 << 20)
os.remove("filler.bin")
try:
    block = bytearray(3 * 1024 ** 3)
    found["memory"] = "allocated"
except MemoryError:
    found["memory"] = "MemoryError"
if os.fork() == 0:
    os.setsid()
    sys.argv[0] = MARK
    while True:
        time.sleep(0.2)
print(json.dumps(found))
'''
MARK = "sandbox-test-marker"


def _marked() -> list[str]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if MARK.encode() in (entry / "cmdline").read_bytes():
                    out.append(entry.name)
            except OSError:
                pass
    return out


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    folder = tmp_path_factory.mktemp("course")
    secret = folder.parent / "classmate.ipynb"
    secret.write_text("{}")
    work = folder / "autograded" / "s" / "lesson"
    work.mkdir(parents=True)
    (work / "data.txt").write_text("a lesson file")
    (work / "lesson.ipynb").write_text("{}")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    code = f"COURSE = {str(folder)!r}\nSECRET = {str(secret)!r}\nPORT = {server.getsockname()[1]}\nMARK = {MARK!r}\n" + PROBE
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    client = NotebookClient(nb, kernel_manager_class=SandboxKernelManager, kernel_name="python3", timeout=120,
                            resources={"metadata": {"path": str(work)}})
    client.config.Sandbox.memory = "2G"
    client.config.Sandbox.disk = "32M"
    client.execute()
    server.close()
    import json
    text = "".join(o.get("text", "") for o in nb.cells[0].outputs if o.output_type == "stream")
    errors = [o for o in nb.cells[0].outputs if o.output_type == "error"]
    assert not errors, errors
    return json.loads(text.strip().splitlines()[-1])


def test_the_kernel_runs_as_a_user_of_its_own_without_capabilities(probe):
    assert probe["uid"] == probe["euid"] and probe["uid"] >= 200_000
    assert int(probe["caps"], 16) == 0


def test_the_kernel_sees_its_own_folder_and_nothing_of_the_course(probe):
    assert probe["cwd"] == "/home/student/work"
    assert probe["home_files"] == ["data.txt"], "the lesson's files, read-only, and never the notebook"
    assert not probe["course"] and not probe["secret"]
    assert probe["root_write"] in ("PermissionError", "OSError")


def test_the_kernel_sees_only_its_own_processes(probe):
    assert probe["pids"][:2] == ["1", "2"] and len(probe["pids"]) < 10


def test_no_network_not_even_loopback(probe):
    assert probe["loopback"] in ("ConnectionRefusedError", "OSError", "TimeoutError")


def test_disk_and_memory_are_limited(probe):
    assert probe["disk"] == 28 and probe["filler_mb"] <= 32           # ENOSPC
    assert probe["memory"] == "MemoryError"


def test_nothing_the_kernel_started_outlives_it(probe):
    assert _marked() == []


def test_the_command_shows_only_the_environment_grader_and_data(tmp_path):
    cmd = command(["python", "-c", "1"], Confinement(sockets=tmp_path), Sandbox())
    binds = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--ro-bind"]
    assert str(ROOT / "grader") in binds and str((ROOT / "data" / "mnist").resolve()) in binds
    assert not any(b in (str(ROOT), str(ROOT / "source"), str(ROOT / "submitted")) for b in binds)
    for flag in ("--unshare-net", "--unshare-pid", "--die-with-parent", "--clearenv", "--new-session"):
        assert flag in cmd
    if os.geteuid() == 0:
        assert "--no-new-privs" in cmd and "--bounding-set=-all" in cmd


def test_a_course_inside_the_environment_is_refused(tmp_path):
    inside = exposed_paths()[0] / "somewhere"
    with pytest.raises(SandboxUnavailable, match="must stay hidden"):
        command(["python"], Confinement(sockets=tmp_path, protect=[inside]), Sandbox())


def test_without_bubblewrap_grading_stops_and_says_how_to_get_it(tmp_path):
    env = {**os.environ, "GRADER_SANDBOX_PATH": str(tmp_path)}
    (tmp_path / "gradebook.db").write_text("")
    done = subprocess.run([sys.executable, "-m", "grader", "--course", str(tmp_path), "autograde"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 2 and "apt-get install bubblewrap" in done.stderr, done.stdout + done.stderr
    done = subprocess.run([sys.executable, "-c", "from grader.sandbox.execute import check_sandbox; check_sandbox()"],
                          env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "apt-get install bubblewrap" in done.stderr
    assert "never runs a submission without it" in done.stderr


@pytest.mark.parametrize("text, size", [("4G", 4 * 1024 ** 3), ("512M", 512 * 1024 ** 2), ("100k", 102400),
                                        ("1.5G", int(1.5 * 1024 ** 3)), (1000, 1000)])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["lots", "-1G", "0", "4X"])
def test_bad_sizes_are_refused_with_the_expected_form(bad):
    with pytest.raises(ValueError, match="number of bytes|positive"):
        parse_size(bad)
