"""The course as a person sees it, in a real browser (headless Debian Chromium through Playwright).

* The web page of :mod:`grader.web`: a network trained here is exported to one HTML file; its
  JavaScript must give PyTorch's predictions and probabilities (within 1e-5) for real MNIST
  test digits, prepare digits drawn onto its canvas (by script and with the mouse) exactly as
  :func:`grader.web.preprocess_drawing` does, and show the answer in its bar chart. The page
  that lesson 07's solution writes, run in JupyterLab, is checked against the network it saved.
* JupyterLab: a server on a free loopback port with a random token (always stopped at the
  end), the solution and release notebooks run with Run > Run All Cells, and what a student
  sees checked: no errors in a solution, the ``NotImplementedError`` of an untouched stub in a
  release, every widget rendered, a slider that changes the numbers it drives, the quiz
  answering a click, the digit pad of lesson 10 answering a stroke, long quiz choices
  fitting their lines, and an instructor's edit of a paired source notebook reaching its
  notebooks/ twin when saved.

Screenshots go to ``artifacts/screenshots/``, the page to ``artifacts/digits.html`` and the
agreement figures to ``artifacts/web_page_agreement.json``. Chromium must be installed
(``make test`` does it with apt where it is missing); without it these tests fail and say so.
The suite takes about nine minutes on two cores.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest
import torch
from jupytext.paired_paths import paired_paths

import browser_util as bu
from conftest import LESSONS, ROOT
from grader import web
from grader.data import load_mnist

#: probabilities of the page and of PyTorch may differ by this much (float32 sums in another order)
PROB_TOL = 1e-5
#: the page's preprocessed pixels and Python's: the same arithmetic in double, rounded to float32 once
PIXEL_TOL = 1e-6


# ---------------------------------------------------------------- shared set-up

@pytest.fixture(scope="module")
def browser():
    try:
        bu.chromium_path()
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)
    with bu.chromium() as b:
        yield b


@pytest.fixture(scope="module")
def mnist_test():
    return load_mnist("test")


@pytest.fixture(scope="module")
def trained() -> dict[str, torch.Tensor]:
    """A 784-128-10 network, seeded: Adam on 10,000 training images, one pass, batches of 50 (~91% test accuracy)."""
    X, y = load_mnist("train")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                   # a shared two-core machine: one thread is faster than two fighting
    try:
        g = torch.Generator().manual_seed(0)
        W1 = (torch.randn(784, 128, generator=g) * (2 / 784) ** 0.5).requires_grad_()
        W2 = (torch.randn(128, 10, generator=g) * (2 / 128) ** 0.5).requires_grad_()
        b1, b2 = torch.zeros(128, requires_grad=True), torch.zeros(10, requires_grad=True)
        opt = torch.optim.Adam([W1, b1, W2, b2], lr=2e-3)
        order = torch.randperm(len(X), generator=g)[:10_000]
        for start in range(0, len(order), 50):
            idx = order[start:start + 50]
            loss = torch.nn.functional.cross_entropy(torch.relu(X[idx] @ W1 + b1) @ W2 + b2, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return {name: t.detach().clone() for name, t in zip(web.NAMES, (W1, b1, W2, b2))}


# ---------------------------------------------------------------- the web page

@pytest.fixture(scope="module")
def page(browser, trained):
    # kept in artifacts/ beside the screenshots, for a person to open
    path = web.export_html(trained, bu.SCREENSHOTS.parent / "digits.html",
                           title="Draw a digit: a network trained in the browser tests")
    page = browser.new_page(viewport={"width": 1100, "height": 560})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_function("window.pageReady === true", timeout=30_000)
    page.requests, page.js_errors, page.file = requests, errors, path
    yield page
    page.close()


def run_js(page, function: str, *args):
    """Call ``function`` in the page with JSON arguments; the answer comes back as JSON (fast for big arrays)."""
    text = page.evaluate(f"a => JSON.stringify(({function})(...JSON.parse(a)))", json.dumps(args))
    return json.loads(text)


def canvas_image(page) -> torch.Tensor:
    """The page's canvas as uint8 grey levels [H, W] (the red channel of white-on-black)."""
    grey = run_js(page, "() => canvasGrey()")
    return torch.tensor(grey["data"], dtype=torch.uint8).reshape(grey["height"], grey["width"])


def record(name: str, values: dict) -> None:
    """Keep the agreement figures beside the screenshots, for the person who reads them."""
    target = bu.SCREENSHOTS.parent / "web_page_agreement.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    found = json.loads(target.read_text()) if target.exists() else {}
    found[name] = values
    target.write_text(json.dumps(found, indent=2))


def test_page_is_one_self_contained_file(page):
    text = page.file.read_text()
    assert page.requests == [page.file.as_uri()], f"the page fetched something besides itself: {page.requests}"
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "the page links to something outside it"
    assert not page.js_errors, f"JavaScript errors in the page: {page.js_errors}"
    assert page.locator("#pad").count() == 1 and page.locator("#clear").count() == 1
    assert page.locator(".bar").count() == 10


def test_page_gives_pytorchs_probabilities_for_test_digits(page, trained, mnist_test):
    X, y = mnist_test
    idx = torch.randperm(len(X), generator=torch.Generator().manual_seed(1))[:200]
    results = run_js(page, "xs => xs.map(x => classifyPixels(x))", X[idx].tolist())
    probs = torch.tensor([r["probs"] for r in results])
    preds = torch.tensor([r["pred"] for r in results])
    expected = web.probabilities(trained, X[idx])
    diff = (probs - expected).abs().max().item()
    agree = int((preds == expected.argmax(1)).sum())
    record("classifyPixels", {"digits": len(idx), "max_prob_diff": diff, "predictions_equal": agree,
                              "page_accuracy": float((preds == y[idx]).float().mean())})
    assert agree == len(idx), f"the page disagrees with PyTorch on {len(idx) - agree} of {len(idx)} digits"
    assert diff <= PROB_TOL, f"probabilities differ from PyTorch's by up to {diff:.2e} (> {PROB_TOL})"
    assert torch.allclose(probs.sum(1), torch.ones(len(idx)), atol=1e-5)
    assert torch.equal(preds, probs.argmax(1))


PIXEL_GAPS: list[float] = []

# where drawImage28 puts a 28x28 digit on the 280x280 canvas: (scale, left, top)
PLACEMENTS = [(7, 60, 50), (9, 10, 5), (4, 150, 160), (6, 0, 100), (10, 0, 0), (3, 200, 20), (8, 40, 60), (5, 100, 30)]


def check_canvas(page, trained, result: dict, what: str) -> tuple[torch.Tensor, float]:
    """The page's preprocessing and prediction of its own canvas, against Python's; returns (pixels, prob diff).

    The largest pixel difference seen is kept in ``PIXEL_GAPS``.
    """
    assert result["pixels"] is not None, f"{what}: the page found nothing drawn"
    pixels = torch.tensor(result["pixels"], dtype=torch.float32)
    expected_pixels = web.preprocess_drawing(canvas_image(page))
    gap = (pixels - expected_pixels).abs().max().item()
    PIXEL_GAPS.append(gap)
    assert gap <= PIXEL_TOL, f"{what}: the page's 28x28 pixels differ from preprocess_drawing's by {gap:.2e}"
    expected = web.probabilities(trained, pixels)[0]
    diff = (torch.tensor(result["probs"]) - expected).abs().max().item()
    assert result["pred"] == int(expected.argmax()), f"{what}: the page says {result['pred']}, PyTorch {int(expected.argmax())}"
    assert diff <= PROB_TOL, f"{what}: probabilities differ from PyTorch's by {diff:.2e}"
    answer = page.locator("#answer").inner_text()
    assert answer.startswith(f"It looks like a {result['pred']} "), f"{what}: the page shows {answer!r}"
    assert page.locator(".bar.best").get_attribute("id") == f"bar-{result['pred']}"
    return pixels, diff


def test_digits_drawn_by_script_are_prepared_and_classified_like_pytorch(page, trained, mnist_test):
    X, y = mnist_test
    worst, same_as_original, rows = 0.0, 0, []
    for i, (scale, left, top) in enumerate(PLACEMENTS):
        digit = X[i]
        result = run_js(page, "(px, o) => drawImage28(px, o)", digit.tolist(), {"scale": scale, "left": left, "top": top})
        pixels, diff = check_canvas(page, trained, result, f"test digit {i} at scale {scale}")
        worst = max(worst, diff)
        # what the page sees is again an MNIST-style digit: close to the original, same answer
        corr = torch.corrcoef(torch.stack([pixels, digit]))[0, 1].item()
        original = int(web.probabilities(trained, digit)[0].argmax())
        same_as_original += result["pred"] == original
        rows.append({"digit": i, "label": int(y[i]), "scale": scale, "page": result["pred"],
                     "original_pred": original, "correlation_with_original": round(corr, 3)})
        assert corr > 0.75, f"test digit {i} at scale {scale}: the prepared image hardly resembles the original ({corr:.2f})"
        if i == 0:
            page.screenshot(path=str(bu.screenshot_path("web-page-drawn-by-script")))
    record("drawImage28", {"digits": len(PLACEMENTS), "max_prob_diff": worst, "max_pixel_diff": max(PIXEL_GAPS),
                           "same_prediction_as_original": same_as_original, "rows": rows})
    assert same_as_original >= len(PLACEMENTS) - 1, f"redrawn digits changed their prediction too often: {rows}"


def mouse_strokes(page, image: torch.Tensor, scale: int = 8, left: int = 28, top: int = 28, ink: float = 0.5) -> int:
    """Draw ``image`` (28x28) with real mouse strokes: one press-drag-release along each run of ink in each row."""
    box = page.locator("#pad").bounding_box()
    strokes = 0
    for r in range(image.shape[0]):
        c = 0
        while c < image.shape[1]:
            if image[r, c] > ink:
                start = c
                while c + 1 < image.shape[1] and image[r, c + 1] > ink:
                    c += 1
                yy = box["y"] + top + (r + 0.5) * scale
                page.mouse.move(box["x"] + left + (start + 0.5) * scale, yy)
                page.mouse.down()
                page.mouse.move(box["x"] + left + (c + 0.5) * scale, yy, steps=max(2, c - start))
                page.mouse.up()
                strokes += 1
            c += 1
    return strokes


def test_digits_drawn_with_the_mouse(page, trained, mnist_test):
    X, y = mnist_test
    rows = []
    for i in (0, 2, 3):                        # a 7, a 1 and a 0
        page.click("#clear")
        assert page.locator("#answer").inner_text() == "Draw a digit."
        blank = run_js(page, "() => classifyCanvas()")
        assert blank == {"probs": None, "pred": None, "pixels": None}
        strokes = mouse_strokes(page, X[i].reshape(28, 28))
        shown = page.locator("#answer").inner_text()          # the page answered the strokes by itself
        result = run_js(page, "() => classifyCanvas()")
        assert shown.startswith(f"It looks like a {result['pred']} "), f"after the strokes the page showed {shown!r}"
        _, diff = check_canvas(page, trained, result, f"test digit {i} drawn with the mouse")
        rows.append({"digit": i, "label": int(y[i]), "strokes": strokes, "page": result["pred"], "max_prob_diff": diff})
        page.screenshot(path=str(bu.screenshot_path(f"web-page-mouse-digit-{i}")))
        assert result["pred"] == int(y[i]), f"test digit {i} ({int(y[i])}) drawn with the mouse was read as {result['pred']}"
    record("mouse", {"max_pixel_diff": max(PIXEL_GAPS), "rows": rows})


def test_a_finger_draws_too(browser, trained, tmp_path):
    """Touch events (a phone, a tablet): a vertical swipe on the canvas is drawn and classified."""
    context = browser.new_context(viewport={"width": 800, "height": 560}, has_touch=True)
    try:
        page = context.new_page()
        path = web.export_html(trained, tmp_path / "digits.html")
        page.goto(path.as_uri())
        page.wait_for_function("window.pageReady === true", timeout=30_000)
        box = page.locator("#pad").bounding_box()
        cdp = context.new_cdp_session(page)
        x = box["x"] + box["width"] / 2
        points = [(x + 2 * k, box["y"] + 40 + 10 * k) for k in range(21)]
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": points[0][0], "y": points[0][1]}]})
        for px, py in points[1:]:
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": px, "y": py}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        page.wait_for_function("document.getElementById('answer').textContent.startsWith('It looks like a')",
                               timeout=10_000)
        image = canvas_image(page)
        rows, cols = (image > 128).any(1).nonzero().flatten(), (image > 128).any(0).nonzero().flatten()
        assert 190 <= int(rows[-1] - rows[0]) <= 225 and int(cols[-1] - cols[0]) <= 70, "the swipe is not on the canvas"
        result = run_js(page, "() => classifyCanvas()")
        check_canvas(page, trained, result, "a vertical swipe")
        page.screenshot(path=str(bu.screenshot_path("web-page-touch-swipe")))
        assert result["pred"] == 1, f"a vertical swipe was read as {result['pred']}"
    finally:
        context.close()


# ---------------------------------------------------------------- JupyterLab

#: every solution notebook runs whole in the browser (lesson 01 has a test of its own)
RUN_WHOLE = LESSONS
#: release notebooks run whole, going on past each error (one is enough: each cell after a stub fails)
RUN_RELEASE = [name for name in ("01_tensors",) if name in LESSONS]
#: every other release: Run All stops at the first stub's NotImplementedError; then the widget
#: cells that need no student code run, as a student would try them
PARTIAL = [name for name in LESSONS if name not in RUN_RELEASE]
#: a whole run in the browser may take this long on a loaded two-core machine
RUN_TIMEOUT_S = 300

NEEDS_NO_STUDENT_CODE = {"quiz", "Question", "demo", "range", "list", "dict", "len", "True", "False", "None"}


def standalone_widget_cells(notebook: Path) -> list[int]:
    """Indices of the first code cell (the imports) and of the widget cells that use only literals and the grader.

    A cell counts when every name it reads is the quiz, the lesson's ``demo`` module or a
    built-in, and it calls ``quiz(...)`` or ``demo.<something>_widget(...)``.
    """
    nb = nbformat.read(notebook, as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    found = [code[0]]
    for i in code[1:]:
        try:
            tree = ast.parse(nb.cells[i].source)
        except SyntaxError:
            continue
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        widgetish = "quiz" in calls or any(re.fullmatch(r"demo\.\w*widget", c) for c in calls)
        if widgetish and names <= NEEDS_NO_STUDENT_CODE:
            found.append(i)
    return found


@pytest.fixture(scope="module")
def lab_root(course, trained, tmp_path_factory) -> Path:
    """The freshly built course in a scratch folder: source/ and release/, as `make lab` serves them.

    Lesson 07 leaves ``mnist_mlp.pt`` beside its notebook; the one of this module's network is put
    there, so that lesson 10's pad loads it as it would for a student instead of training again.
    The source notebooks keep their jupytext pairing with ``notebooks/``, as in a checkout;
    ``instructor/`` holds a second copy of one lesson and its twin, which
    test_instructor_can_edit_and_save_a_paired_source_notebook edits.
    """
    root = tmp_path_factory.mktemp("lab-root")
    for kind in ("source", "release"):
        for lesson in LESSONS:
            shutil.copytree(course / kind / lesson, root / kind / lesson)
    shutil.copytree(course / "notebooks", root / "notebooks")
    (root / "source" / "07_loop").mkdir(parents=True, exist_ok=True)
    torch.save(trained, root / "source" / "07_loop" / "mnist_mlp.pt")
    # an instructor's checkout, pairing kept: instructor/source/<lesson>/<lesson>.ipynb and its text twin
    lesson = LESSONS[0]
    source = course / "source" / lesson / f"{lesson}.ipynb"
    formats = nbformat.read(source, as_version=4).metadata.get("jupytext", {}).get("formats", "ipynb")
    pair = paired_paths(str(ROOT / "source" / lesson / f"{lesson}.ipynb"), "ipynb", formats)
    for path, _ in sorted(pair, key=lambda p: p[0].endswith(".ipynb")):      # the notebook last, newest, as built
        relative = Path(path).relative_to(ROOT)
        (root / "instructor" / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(course / relative, root / "instructor" / relative)
    return root


@pytest.fixture(scope="module")
def lab(lab_root, tmp_path_factory):
    with bu.jupyter_lab(lab_root, tmp_path_factory.mktemp("lab-home")) as server:
        yield server


@pytest.fixture(scope="module")
def lab_page(browser, lab):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def opened(lab_page, lab):
    """``opened(path)`` opens a notebook; it is closed (kernel shut down, nothing saved) after the test."""
    notebooks = []

    def open_(path: str) -> bu.Notebook:
        nb = bu.Notebook(lab_page, lab, path).open()
        notebooks.append(nb)
        return nb

    yield open_
    for nb in notebooks:
        try:
            nb.close()
        except Exception:                      # a failed test may leave the page in any state
            pass


def code_cells(nb: bu.Notebook) -> list[dict]:
    return [c for c in nb.outputs() if c["type"] == "code"]


def assert_clean_run(nb: bu.Notebook) -> None:
    """Every code cell ran, no error output, nothing shown as an error, every widget drawn."""
    not_run = [c["index"] for c in code_cells(nb) if not c["count"] and c["source"].strip()]
    assert not nb.errors(), f"{nb.path}: errors after Run All: {nb.errors()}"
    assert not nb.stderr_shown(), f"{nb.path}: outputs shown as errors: {nb.stderr_shown()}"
    assert not not_run, f"{nb.path}: cells that did not run: {not_run}"
    problems = nb.widget_problems()
    assert not problems, f"{nb.path}: widgets not rendered: {problems}"


def record_lab(what: str, path: str, found) -> None:
    target = bu.SCREENSHOTS.parent / "lab_findings.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(target.read_text()) if target.exists() else {}
    data.setdefault(what, {})[path] = found
    target.write_text(json.dumps(data, indent=2))


def answer_a_quiz_question(nb: bu.Notebook) -> None:
    """Pick the first answer of the first quiz question; the feedback must appear under it."""
    page = nb.page
    record_lab("quiz choices that do not fit", nb.path, nb.overlapping_choices())
    radio = page.locator(".widget-radio-box input[type=radio]").first
    radio.scroll_into_view_if_needed()
    radio.check()
    question = page.locator(".widget-vbox:has(> .widget-radio)").first      # title, choices, feedback
    feedback = question.locator(":scope > .widget-html").last
    feedback.filter(has_text=re.compile(r"^(Correct|Not quite)")).wait_for(timeout=15_000)


def drag(page, handle, to_x: float, to_y: float) -> None:
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(to_x, to_y, steps=10)
    page.mouse.up()


def wait_for_text(locator, pattern: str, timeout_s: float = 20) -> str:
    """The locator's text once it matches ``pattern`` (a regex)."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = locator.inner_text()
        if re.search(pattern, text, re.S):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"expected text matching {pattern!r}, still {text[:300]!r}")
        time.sleep(0.2)


# what a widget output shows, its sliders left out (their own readouts change whenever they move)
JS_DRIVEN = """node => { const copy = node.cloneNode(true);
  copy.querySelectorAll('.widget-slider').forEach(s => s.remove());
  return copy.innerHTML; }"""


def check_first_slider_drives_its_widget(nb: bu.Notebook) -> int:
    """Drag the first horizontal slider of every widget that has one; what the widget shows must change.

    Toggle buttons are switched on first (a batch size shows only once the data is sliced
    into batches, say). Where nothing changes within 5 s, the widget's first button is clicked
    (lesson 07's spirals: the sliders set up the next training, "Train again" runs it).
    Returns how many widgets were tried.
    """
    page, tried = nb.page, 0
    for k, view in enumerate(nb.widget_views()):
        if not view["sliders"]:
            continue
        widget = nb.widget(k)
        widget.scroll_into_view_if_needed()
        off = widget.locator(".widget-toggle-button:not(.mod-active)")
        for _ in range(off.count()):
            off.first.click()
            page.wait_for_timeout(500)
        before = widget.evaluate(JS_DRIVEN)
        slider = widget.locator(".widget-hslider").first
        readout = slider.locator(".widget-readout").inner_text()
        track = slider.locator(".noUi-target").bounding_box()
        drag(page, slider.locator(".noUi-handle"), track["x"] + 0.3 * track["width"], track["y"] + track["height"] / 2)
        if slider.locator(".widget-readout").inner_text() == readout:
            drag(page, slider.locator(".noUi-handle"), track["x"] + 0.8 * track["width"], track["y"] + track["height"] / 2)
        moved = slider.locator(".widget-readout").inner_text()
        assert moved != readout, f"{nb.path}: widget {k}: the slider did not move ({readout})"
        deadline, clicked = time.monotonic() + 30, ""
        while widget.evaluate(JS_DRIVEN) == before:
            button = widget.locator("button.widget-button:not([disabled])").first
            if not clicked and time.monotonic() > deadline - 25 and button.count():
                # a widget whose sliders only set up the next run (training again takes a while)
                clicked = button.inner_text()
                button.click()
                deadline = time.monotonic() + 90
            assert time.monotonic() < deadline, (
                f"{nb.path}: widget {k}: moving {slider.inner_text()!r} from {readout} to {moved}"
                + (f" and clicking {clicked!r}" if clicked else "") + " changed nothing")
            time.sleep(0.3)
        tried += 1
    return tried


def check_memory_table(nb: bu.Notebook, name: str) -> None:
    """Lesson 01's table: 101,770 parameters at hidden=128; dragging the slider and picking float16 update it."""
    page = nb.page
    slider = page.locator(".widget-hslider", has=page.locator("label", has_text="hidden")).first
    slider.scroll_into_view_if_needed()
    widget = page.locator(".widget-vbox", has=slider).last
    table = widget.locator(".widget-html").first
    wait_for_text(table, r"total\s+101,770\s+407\.08 KB")
    track = slider.locator(".noUi-target").bounding_box()
    drag(page, slider.locator(".noUi-handle"), track["x"] + 0.3 * track["width"], track["y"] + track["height"] / 2)
    hidden = int(slider.locator(".widget-readout").inner_text())
    assert hidden != 128, "the slider did not move"
    count = 784 * hidden + hidden + hidden * 10 + 10
    wait_for_text(table, rf"W1\s+\[784, {hidden}\].*total\s+{count:,}\s+{count * 4 / 1000:,.2f} KB")
    widget.locator("select").select_option("float16")
    wait_for_text(table, rf"total\s+{count:,}\s+{count * 2 / 1000:,.2f} KB")
    widget.screenshot(path=str(bu.screenshot_path(f"{name}-memory-table-moved")))


def test_lab_lesson_01_solution(opened):
    if "01_tensors" not in RUN_WHOLE:
        pytest.skip("lesson 01 is not among COURSE_LESSONS")
    nb = opened("source/01_tensors/01_tensors.ipynb")
    nb.run_all(RUN_TIMEOUT_S)
    assert_clean_run(nb)
    assert len(nb.widget_views()) >= 2, "the memory table and the quiz should be on the page"
    check_memory_table(nb, "lab-01_tensors-solution")
    answer_a_quiz_question(nb)
    nb.screenshots("lab-01_tensors-solution")


@pytest.mark.parametrize("lesson", RUN_RELEASE)
def test_lab_release_shows_the_stubs_error_and_its_widgets(opened, lesson):
    nb = opened(f"release/{lesson}/{lesson}.ipynb")
    nb.run_all(RUN_TIMEOUT_S)
    first = nb.errors()
    assert first, f"{lesson}: the untouched release ran without an error"
    assert first[0]["ename"] == "NotImplementedError", f"{lesson}: the first error is {first[0]}, not the stub's"
    shown = nb.stderr_shown()
    assert shown and "NotImplementedError" in shown[0], f"{lesson}: the page does not show the stub's error: {shown[:1]}"
    nb.run_all_past_errors(RUN_TIMEOUT_S)
    names = {e["ename"] for e in nb.errors()}
    assert "NotImplementedError" in names
    problems = nb.widget_problems()
    assert not problems, f"{lesson}: widgets not rendered in the release: {problems}"
    if lesson == "01_tensors":
        check_memory_table(nb, f"lab-{lesson}-release")
    nb.screenshots(f"lab-{lesson}-release")


def check_logits_sliders(nb: bu.Notebook) -> None:
    """Lesson 03: dragging the target's logit up raises its probability and lowers the loss below ln 10."""
    page = nb.page
    chart = page.locator(".widget-vbox:has(.widget-vslider)").first
    chart.scroll_into_view_if_needed()
    before = wait_for_text(chart, r"loss = .* = ([\d.]+)")
    loss_before = float(re.search(r"loss = [^=]*=[^=]*= ([\d.]+)", before).group(1))
    slider = chart.locator(".widget-vslider", has=page.locator("label", has_text=re.compile(r"^3$"))).first
    track = slider.locator(".noUi-target").bounding_box()
    drag(page, slider.locator(".noUi-handle"), track["x"] + track["width"] / 2, track["y"] + 0.2 * track["height"])
    after = wait_for_text(chart, r"loss = [^=]*=[^=]*= (?!" + re.escape(f"{loss_before:.4f}") + r")[\d.]+")
    loss_after = float(re.search(r"loss = [^=]*=[^=]*= ([\d.]+)", after).group(1))
    assert loss_after < loss_before, f"raising the target's logit should lower the loss: {loss_before} -> {loss_after}"
    chart.screenshot(path=str(bu.screenshot_path("lab-03_loss-solution-logits-moved")))


def check_digit_pad(nb: bu.Notebook) -> str:
    """Lesson 10: Clear, then a stroke with the mouse on the pad; the bars must give a prediction. Returns it."""
    page = nb.page
    pad = page.locator(".widget-hbox:has(canvas):has(button:has-text('Clear'))").first
    pad.scroll_into_view_if_needed()
    bars = pad.locator(".widget-html").last
    wait_for_text(bars, r"It looks like a \d")             # the test digit the cell put on the pad
    pad.locator("button:has-text('Clear')").click()
    wait_for_text(bars, r"Draw a digit")
    canvas = pad.locator("canvas").first
    box = canvas.bounding_box()
    x = box["x"] + box["width"] * 0.5
    page.mouse.move(x, box["y"] + box["height"] * 0.15)
    page.mouse.down()
    page.mouse.move(x + box["width"] * 0.04, box["y"] + box["height"] * 0.85, steps=25)
    page.mouse.up()
    text = wait_for_text(bars, r"It looks like a \d", timeout_s=30)
    pad.screenshot(path=str(bu.screenshot_path("lab-10_nn-solution-digit-pad-stroke")))
    return re.search(r"It looks like a (\d)", text).group(1)


def check_page_written_by_lesson_07(browser, folder: Path, mnist_test) -> None:
    """The page that lesson 07's solution wrote beside itself answers like the network it saved."""
    page_file, saved = folder / "mnist_mlp.html", folder / "mnist_mlp.pt"
    assert page_file.exists() and saved.exists(), f"lesson 07 should leave mnist_mlp.html and mnist_mlp.pt in {folder}"
    params = torch.load(saved, weights_only=True)
    X, _ = mnist_test
    digits = X[torch.randperm(len(X), generator=torch.Generator().manual_seed(7))[:50]]
    page = browser.new_page()
    try:
        page.goto(page_file.as_uri())
        page.wait_for_function("window.pageReady === true", timeout=30_000)
        results = run_js(page, "xs => xs.map(x => classifyPixels(x))", digits.tolist())
    finally:
        page.close()
    expected = web.probabilities(params, digits)
    diff = (torch.tensor([r["probs"] for r in results]) - expected).abs().max().item()
    agree = sum(r["pred"] == int(e.argmax()) for r, e in zip(results, expected))
    record("lesson_07_page", {"digits": len(digits), "max_prob_diff": diff, "predictions_equal": agree})
    assert agree == len(digits), f"lesson 07's page disagrees with its saved network on {len(digits) - agree} digits"
    assert diff <= PROB_TOL, f"lesson 07's page: probabilities differ from PyTorch's by {diff:.2e} (> {PROB_TOL})"


@pytest.mark.parametrize("lesson", [name for name in RUN_WHOLE if name != "01_tensors"])
def test_lab_solution_runs_clean_and_its_widgets_answer(opened, lab_root, browser, mnist_test, lesson):
    nb = opened(f"source/{lesson}/{lesson}.ipynb")
    nb.run_all(RUN_TIMEOUT_S)
    assert_clean_run(nb)
    if lesson == "03_loss":
        check_logits_sliders(nb)
    if lesson == "07_loop":
        check_page_written_by_lesson_07(browser, lab_root / "source" / lesson, mnist_test)
    check_first_slider_drives_its_widget(nb)
    if lesson == "10_nn":
        predicted = check_digit_pad(nb)
        assert predicted == "1", f"a straight vertical stroke was read as a {predicted}"
    answer_a_quiz_question(nb)
    nb.screenshots(f"lab-{lesson}-solution")


@pytest.mark.parametrize("lesson", PARTIAL)
def test_lab_release_opens_and_its_standalone_widgets_render(opened, lab_root, lesson):
    cells = standalone_widget_cells(lab_root / "release" / lesson / f"{lesson}.ipynb")
    nb = opened(f"release/{lesson}/{lesson}.ipynb")
    nb.run_all(RUN_TIMEOUT_S)
    first = nb.errors()
    assert first and first[0]["ename"] == "NotImplementedError", (
        f"{lesson}: Run All on the untouched release should stop at a stub's NotImplementedError, got {first[:1]}")
    shown = nb.stderr_shown()
    assert shown and "NotImplementedError" in shown[0], f"{lesson}: the page does not show the stub's error: {shown[:1]}"
    nb.run_cells(cells, RUN_TIMEOUT_S)
    failed = [e for e in nb.errors() if e["index"] in cells]
    assert not failed, f"{lesson}: errors in the imports or in widget cells {cells}: {failed}"
    assert len(nb.widget_views()) >= len(cells) - 1, f"{lesson}: widget cells {cells[1:]} showed no widget"
    problems = nb.widget_problems()
    assert not problems, f"{lesson}: widgets not rendered: {problems}"
    check_first_slider_drives_its_widget(nb)
    if any("quiz(" in c["source"] for c in code_cells(nb) if c["index"] in cells):
        answer_a_quiz_question(nb)
    nb.screenshots(f"lab-{lesson}-release", max_pages=1)
    nb.widget_screenshots(f"lab-{lesson}-release")


def test_instructor_can_edit_and_save_a_paired_source_notebook(opened, lab_root):
    """COURSE.md: instructors may edit source/ in JupyterLab, the notebooks/ twin following the edit."""
    lesson = LESSONS[0]
    folder = lab_root / "instructor"
    twins = [p for p in folder.rglob("*") if p.is_file() and p.suffix != ".ipynb"]
    nb = opened(f"instructor/source/{lesson}/{lesson}.ipynb")
    nb.page.evaluate("""() => { const cell = window.jupyterapp.shell.currentWidget.content.widgets[0];
        cell.model.sharedModel.setSource(cell.model.sharedModel.getSource() + '\\n\\nEdited in JupyterLab.'); }""")
    nb.page.locator(".jp-NotebookPanel").first.click(position={"x": 400, "y": 120})
    nb.page.keyboard.press("Control+s")
    deadline = time.monotonic() + 20
    while not all("Edited in JupyterLab." in p.read_text() for p in twins + [folder / "source" / lesson / f"{lesson}.ipynb"]):
        dialog = nb.dialog_text()
        assert not dialog, f"saving failed: {dialog[:300]}"
        assert time.monotonic() < deadline, "the edit did not reach the files within 20 s"
        time.sleep(0.3)
    assert twins, "the notebook has no paired text file"


def longest_quiz_choice(notebook: Path) -> int:
    """Length of the longest string in the notebook's quiz cell (0 when it has none)."""
    nb = nbformat.read(notebook, as_version=4)
    longest = 0
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.lstrip().startswith("quiz("):
            tree = ast.parse(cell.source)
            strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            longest = max([longest] + [len(t) for t in strings])
    return longest


def test_quiz_choices_fit_their_lines(opened, lab_root):
    """The longest quiz choices of the course, in the release: each on its own line(s), next to its button."""
    releases = {name: lab_root / "release" / name / f"{name}.ipynb" for name in LESSONS}
    lesson = max(releases, key=lambda name: longest_quiz_choice(releases[name]))
    nb = opened(f"release/{lesson}/{lesson}.ipynb")
    source = nbformat.read(releases[lesson], as_version=4)
    imports, *widgets = standalone_widget_cells(releases[lesson])
    cells = [imports] + [i for i in widgets if source.cells[i].source.lstrip().startswith("quiz(")]
    nb.run_cells(cells, RUN_TIMEOUT_S)
    assert nb.widget_problems() == []
    found = nb.overlapping_choices()
    assert not found, f"{lesson}: quiz choices that do not fit: {found}"
