"""What the browser tests share: headless Chromium through Playwright, a JupyterLab server that
is always stopped, and readers of what a student sees in a notebook.

Chromium is Debian's (``apt-get install -y chromium``, done by ``make test`` where missing);
Playwright's own browser download is not used. ``CHROMIUM=/path/to/chromium`` picks another.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: where screenshots go, for a person to look at (ignored by git as /artifacts/)
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
INSTALL_HINT = "run `make browser-deps` (or `apt-get update && apt-get install -y chromium`)"


def chromium_path() -> str:
    """Debian's Chromium (or ``$CHROMIUM``); a clear error when it is not installed."""
    wanted = os.environ.get("CHROMIUM")
    if wanted:
        if Path(wanted).is_file() and os.access(wanted, os.X_OK):
            return wanted
        raise RuntimeError(f"$CHROMIUM={wanted} is not an executable file")
    for candidate in ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError(f"the browser tests need Chromium and none was found (/usr/bin/chromium, PATH): {INSTALL_HINT}")


@contextmanager
def chromium():
    """A headless Chromium browser, closed at the end."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


# ---------------------------------------------------------------- JupyterLab server

#: settings a fresh user profile gets, so that no popup covers the notebook and nothing is saved
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    # every cell in the page (no virtual scrolling), so that all outputs can be read and photographed
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def end_group(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM the process group ``process`` leads; SIGKILL it if it is still there after ``grace`` s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A running JupyterLab: ``url(path)`` of a notebook, with the token."""

    def __init__(self, port: int, token: str, process: subprocess.Popen, log: Path):
        self.port, self.token, self.process, self.log = port, token, process, log
        self.base = f"http://127.0.0.1:{port}"

    def url(self, path: str) -> str:
        return f"{self.base}/lab/tree/{path}?token={self.token}"

    def api(self, route: str, method: str = "GET"):
        request = urllib.request.Request(f"{self.base}/api/{route}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def _die_with_parent() -> None:
    """In the server's process, before it starts: a SIGTERM when the test process ends, however it ends (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)      # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _stop(lab: Lab) -> None:
    """Shut the server down (it stops its kernels), then end whatever it started, by pid."""
    import psutil

    process = lab.process
    started = set(_descendants(process.pid))          # kernels run in sessions of their own: note them now
    if process.poll() is None:
        try:
            lab.api("shutdown", method="POST")
        except OSError:
            pass
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            end_group(process, grace=10)
    for pid in started:
        try:
            child = psutil.Process(pid)
            child.kill()
            child.wait(timeout=10)
        except psutil.NoSuchProcess:
            pass


@contextmanager
def jupyter_lab(root: Path, home: Path, startup_s: float = 120):
    """JupyterLab serving ``root`` on a free loopback port with a random token; always stopped at the end.

    ``home`` holds this server's own settings, workspaces, runtime files and log, so that
    the user's profile is neither read nor written.
    """
    port, token = free_port(), secrets.token_hex(24)
    settings = home / "settings"
    for name, values in LAB_SETTINGS.items():
        target = settings / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(settings), JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
               IPYTHONDIR=str(home / "ipython"), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"),
               PYTHONUNBUFFERED="1")
    jupyter = Path(sys.executable).parent / "jupyter"
    command = [str(jupyter), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
               "--ServerApp.port_retries=0", f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
               "--ServerApp.allow_root=True", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None"]
    log = home / "jupyterlab.log"
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, cwd=root, start_new_session=True, preexec_fn=_die_with_parent)
    lab = Lab(port, token, process, log)
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with status {process.returncode}:\n{lab.log_tail()}")
            try:
                lab.api("status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not answer within {startup_s:.0f} s:\n{lab.log_tail()}")
                time.sleep(0.5)
        yield lab
    finally:
        _stop(lab)


# ---------------------------------------------------------------- a notebook in the browser

# JavaScript run in the page; `window.jupyterapp` is there because of --LabApp.expose_app_in_browser.
JS_NOTEBOOK = "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget; " \
              "return w && w.content && w.sessionContext ? w : null; }"

JS_STATE = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  const prompts = Array.from(w.node.querySelectorAll('.jp-InputPrompt')).map(p => p.textContent.trim());
  return {kernel: kernel ? kernel.status : null, busy: prompts.filter(p => p.includes('*')).length,
          cells: w.content.widgets.length};
}"""

JS_OUTPUTS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  return w.content.widgets.map((cell, index) => {
    const m = cell.model;
    if (m.type !== 'code') return {index, type: m.type, count: null, outputs: []};
    const outputs = m.outputs.toJSON().map(o => ({
      type: o.output_type, name: o.name || null, ename: o.ename || null, evalue: o.evalue || null,
      text: o.text ? String(Array.isArray(o.text) ? o.text.join('') : o.text).slice(0, 500) : null,
      mimes: o.data ? Object.keys(o.data) : []}));
    return {index, type: 'code', count: m.executionCount, source: m.sharedModel.getSource().slice(0, 200), outputs};
  });
}"""

# every widget output of the notebook's model, and what the page shows for it
JS_WIDGETS = """() => {
  const w = window.jupyterapp.shell.currentWidget, found = [];
  w.content.widgets.forEach((cell, index) => {
    if (cell.model.type !== 'code') return;
    const children = Array.from(cell.outputArea.node.children).filter(n => n.classList.contains('jp-OutputArea-child'));
    cell.model.outputs.toJSON().forEach((o, k) => {
      if (!o.data || !o.data['application/vnd.jupyter.widget-view+json']) return;
      const node = children[k] ? children[k].querySelector('.jp-OutputArea-output') : null;
      if (node) node.setAttribute('data-widget-check', String(found.length));   // for locators and pictures
      found.push({cell: index, sliders: node ? node.querySelectorAll('.widget-hslider .noUi-handle').length : 0, text: node ? node.innerText.slice(0, 300) : '',
                  rendered: !!(node && node.querySelector('.jupyter-widgets')),
                  height: node ? node.getBoundingClientRect().height : 0});
    });
  });
  return found;
}"""

BAD_WIDGET_TEXT = ("Loading widget", "Error displaying widget", "model not found", "Error rendering")


class Notebook:
    """One notebook open in JupyterLab, in a Playwright page. Open it with :meth:`open`."""

    def __init__(self, page, lab: Lab, path: str):
        self.page, self.lab, self.path = page, lab, path

    def open(self, timeout_s: float = 120) -> "Notebook":
        """Open the notebook: through the address bar the first time, then as JupyterLab's File > Open does."""
        page = self.page
        if page.url.startswith(self.lab.base) and page.evaluate("() => !!window.jupyterapp"):
            page.evaluate("p => { window.jupyterapp.commands.execute('docmanager:open', {path: p, factory: 'Notebook'}); }",
                          self.path)
        else:
            page.goto(self.lab.url(self.path))
        try:
            page.wait_for_function("""p => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                return !!(w && w.context && w.context.path === p && w.content && w.content.widgets &&
                          w.content.widgets.length > 0 && w.sessionContext); }""",
                                   arg=self.path, timeout=timeout_s * 1000)
        except Exception:
            raise AssertionError(f"{self.path} did not open in JupyterLab within {timeout_s:.0f} s "
                                 f"(dialog: {self.dialog_text()!r}); server log:\n{self.lab.log_tail(15)}") from None
        self.wait_idle(timeout_s)
        return self

    def close(self) -> None:
        """Shut the kernel down and close the tab without saving (nothing is written to disk)."""
        for _ in range(3):                        # a dialog left open (a failed save, say) goes first
            if not self.dialog_text():
                break
            self.page.locator(".jp-Dialog button").last.click()
            self.page.wait_for_timeout(300)
        self.page.evaluate("""async () => { const w = window.jupyterapp.shell.currentWidget;
            await w.sessionContext.shutdown(); w.context.model.dirty = false; w.dispose(); }""")

    def dialog_text(self) -> str | None:
        dialog = self.page.query_selector(".jp-Dialog")
        return dialog.inner_text() if dialog else None

    def js(self, function: str, arg=None, timeout_s: float = 60):
        """``page.evaluate`` with a time limit (a page that stops answering fails the test instead of hanging it).

        ``function`` must return an object or an array (a truthy value).
        """
        try:
            handle = self.page.wait_for_function(function, arg=arg, timeout=timeout_s * 1000, polling=200)
        except Exception as err:
            raise AssertionError(f"{self.path}: the page did not answer within {timeout_s:.0f} s: {err}") from None
        try:
            return handle.json_value()
        finally:
            handle.dispose()

    def state(self) -> dict:
        return self.js(JS_STATE)

    def wait_idle(self, timeout_s: float, settle_s: float = 1.0) -> None:
        """Until the kernel is idle and no cell waits to run, for ``settle_s`` in a row."""
        deadline = time.monotonic() + timeout_s
        calm_since = None
        while True:
            dialog = self.dialog_text()
            if dialog:
                raise AssertionError(f"{self.path}: a dialog covers the notebook: {dialog[:300]!r}")
            state = self.state()
            calm = state["kernel"] == "idle" and state["busy"] == 0
            now = time.monotonic()
            if calm:
                calm_since = calm_since or now
                if now - calm_since >= settle_s:
                    return
            else:
                calm_since = None
            if now > deadline:
                raise AssertionError(f"{self.path}: still busy after {timeout_s:.0f} s ({state}); "
                                     f"server log:\n{self.lab.log_tail(15)}")
            time.sleep(0.25)

    def menu(self, menu: str, item: str) -> None:
        """Click ``menu`` in the menu bar, then ``item``, as a person would."""
        entry = self.page.locator(".lm-Menu-item:visible:not(.lm-mod-disabled) .lm-Menu-itemLabel",
                                  has_text=re.compile(f"^{re.escape(item)}$"))
        for attempt in range(3):
            self.page.keyboard.press("Escape")     # nothing else open
            self.page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
            try:
                entry.first.wait_for(timeout=5000)
                break
            except Exception:
                if attempt == 2:
                    shown = self.page.locator(".lm-Menu-item:visible .lm-Menu-itemLabel").all_inner_texts()
                    raise AssertionError(f"no {item!r} to click in the {menu!r} menu; it shows {shown}") from None
        entry.first.click()

    def _start_and_wait(self, before: int, timeout_s: float) -> None:
        deadline = time.monotonic() + 20
        while self.state()["busy"] == 0 and self.executed() == before and time.monotonic() < deadline:
            time.sleep(0.2)                       # the run has not started yet
        self.wait_idle(timeout_s)

    def run_all(self, timeout_s: float) -> None:
        """Run > Run All Cells, then wait until the kernel is idle again."""
        before = self.executed()
        self.menu("Run", "Run All Cells")
        self._start_and_wait(before, timeout_s)

    def run_from(self, index: int, timeout_s: float) -> None:
        """Select cell ``index`` and Run > Run Selected Cell and All Below (Run Selected Cell for the last one).

        On a loaded machine a click can land while JupyterLab redraws the notebook and run
        nothing; the menu is tried up to three times before giving up.
        """
        before = self.executed()
        last = index == self.state()["cells"] - 1       # JupyterLab greys "and All Below" out on the last cell
        for _ in range(3):
            self.page.evaluate("i => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = i; }", index)
            self.menu("Run", "Run Selected Cell and Do not Advance" if last else "Run Selected Cell and All Below")
            self._start_and_wait(before, timeout_s)
            if self.executed() != before:
                return

    def run_cells(self, indices: list[int], timeout_s: float) -> None:
        """Run just these cells, one after the other (as Shift+Enter on each would)."""
        for index in indices:
            self.page.evaluate("""async i => { const app = window.jupyterapp;
                app.shell.currentWidget.content.activeCellIndex = i;
                await app.commands.execute('notebook:run-cell'); }""", index)
            self.wait_idle(timeout_s, settle_s=0.5)

    def run_all_past_errors(self, timeout_s: float, rounds: int = 60) -> None:
        """Run All Cells; where a cell fails, go on from the next cell that has not run, until the end."""
        self.run_all(timeout_s)
        for _ in range(rounds):
            cells = self.outputs()
            failed = [c["index"] for c in cells if any(o["type"] == "error" for o in c["outputs"])]
            if not failed:
                return
            waiting = [c["index"] for c in cells if c["type"] == "code" and c["index"] > max(failed)
                       and not c["count"] and c["source"].strip()]       # JupyterLab does not run empty cells
            if not waiting:
                return
            before = self.executed()
            self.run_from(waiting[0], timeout_s)
            if self.executed() == before:
                raise AssertionError(f"{self.path}: Run Selected Cell and All Below ran nothing from cell {waiting[0]}")
        raise AssertionError(f"{self.path}: still cells left after {rounds} rounds")

    def outputs(self) -> list[dict]:
        return self.js(JS_OUTPUTS)

    def executed(self) -> int:
        return sum(1 for c in self.outputs() if c["count"])

    def errors(self) -> list[dict]:
        """Every error output: {index, ename, evalue}."""
        return [{"index": c["index"], "ename": o["ename"], "evalue": o["evalue"]}
                for c in self.outputs() for o in c["outputs"] if o["type"] == "error"]

    def stderr_shown(self) -> list[str]:
        """Texts of the outputs JupyterLab shows as errors (tracebacks and stderr), read from the page itself."""
        return self.page.eval_on_selector_all(
            '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]',
            "nodes => nodes.map(n => n.innerText.slice(0, 400))")

    def widget_views(self) -> list[dict]:
        return self.js(JS_WIDGETS)

    def widget_problems(self, timeout_s: float = 30) -> list[str]:
        """Wait for every widget output to render; what is still wrong after ``timeout_s`` (empty: all fine)."""
        deadline = time.monotonic() + timeout_s
        while True:
            problems = []
            for v in self.widget_views():
                bad = [t for t in BAD_WIDGET_TEXT if t.lower() in v["text"].lower()]
                if bad or not v["rendered"] or v["height"] < 5:
                    problems.append(f"cell {v['cell']}: widget {'not rendered' if not v['rendered'] else 'empty'} "
                                    f"or showing {bad}: {v['text'][:120]!r}")
            if not problems or time.monotonic() > deadline:
                return problems
            time.sleep(0.5)

    def overlapping_choices(self) -> list[str]:
        """Radio-button choices (the quizzes) whose text runs over the next choice or out of its box."""
        return self.js("""() => {
          const found = [];
          document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .widget-radio-box').forEach(box => {
            const labels = Array.from(box.querySelectorAll('label'));
            labels.forEach((label, i) => {
              const r = label.getBoundingClientRect(), text = label.innerText.trim().slice(0, 60);
              const next = labels[i + 1] && labels[i + 1].getBoundingClientRect();
              if (next && r.bottom > next.top + 1) found.push('runs over the next choice: ' + text);
              else if (label.scrollHeight > label.clientHeight + 2 || label.scrollWidth > label.clientWidth + 2)
                found.push('does not fit its line: ' + text);
            });
          });
          return found; }""")

    def widget(self, k: int):
        """A locator of the ``k``-th widget output (in the order of :meth:`widget_views`)."""
        self.widget_views()
        return self.page.locator(f'[data-widget-check="{k}"]')

    def widget_screenshots(self, name: str) -> list[Path]:
        """One picture of each widget output: ``name-widget-1.png``, ..."""
        paths = []
        for k, view in enumerate(self.widget_views()):
            path = screenshot_path(f"{name}-widget-{k + 1}")
            self.widget(k).screenshot(path=str(path))
            paths.append(path)
        return paths

    def screenshots(self, name: str, height: int = 1800, max_pages: int = 40) -> list[Path]:
        """The notebook from top to bottom, one picture per screenful: ``name-01.png``, ``name-02.png``, ..."""
        page = self.page
        size = page.viewport_size
        page.set_viewport_size({"width": size["width"], "height": height})
        paths = []
        try:
            scroller = "window.jupyterapp.shell.currentWidget.node.querySelector('.jp-WindowedPanel-outer')"
            page.evaluate(f"() => {{ const s = {scroller}; s.scrollTop = 0; }}")
            for k in range(max_pages):
                page.wait_for_timeout(300)
                path = screenshot_path(f"{name}-{k + 1:02d}")
                page.screenshot(path=str(path))
                paths.append(path)
                # the last cell in view: the rest is Lab's blank space past the end, not worth a picture
                moved = page.evaluate(f"""() => {{ const s = {scroller}, before = s.scrollTop;
                    const cells = window.jupyterapp.shell.currentWidget.content.widgets;
                    const last = cells[cells.length - 1].node.getBoundingClientRect();
                    if (last.bottom <= s.getBoundingClientRect().bottom) return false;
                    s.scrollTop = before + s.clientHeight - 60; return s.scrollTop > before; }}""")
                if not moved:
                    break
        finally:
            page.set_viewport_size(size)
        return paths
