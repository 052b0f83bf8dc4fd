"""grader.web without a browser: the exported file, its embedded weights, the reference forward
pass and the MNIST-style preparation of a drawing (the page's JavaScript is checked against
these in test_browser.py)."""

from __future__ import annotations

import base64
import json
import re

import pytest
import torch
import torch.nn.functional as F

from grader import web
from grader.data import load_mnist


def seeded_params(hidden: int = 128, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"W1": torch.randn(784, hidden, generator=g) * 0.05, "b1": torch.randn(hidden, generator=g) * 0.1,
            "W2": torch.randn(hidden, 10, generator=g) * 0.1, "b2": torch.randn(10, generator=g) * 0.1}


def embedded(text: str) -> dict:
    return json.loads(re.search(r"const NET = (\{.*?\});", text).group(1))


# ---------------------------------------------------------------- the file

def test_export_writes_one_page_with_the_weights_bit_for_bit(tmp_path):
    params = seeded_params()
    path = web.export_html(params, tmp_path / "sub" / "digits.html", title="Mine & <yours>")
    assert path == tmp_path / "sub" / "digits.html" and path.is_file()
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<title>Mine &amp; &lt;yours&gt;</title>" in text
    net = embedded(text)
    assert net["hidden"] == 128
    for name, tensor in params.items():
        assert torch.equal(web.decode(net[name], tensor.shape), tensor), name
    # little-endian float32, whatever the machine
    raw = base64.b64decode(net["b2"])
    assert len(raw) == 40 and raw[:4] == params["b2"][0].numpy().astype("<f4").tobytes()
    assert 500_000 < len(text) < 700_000, "about 4/3 of the 407,080 bytes of weights, plus a little"
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "nothing may be fetched from elsewhere"
    for api in ("classifyPixels", "classifyCanvas", "drawImage28", "canvasGrey", "preprocessGrey", "clearCanvas"):
        assert api in text


def test_export_takes_a_tuple_tensors_that_require_grad_and_other_widths(tmp_path):
    params = seeded_params(hidden=32)
    as_tuple = tuple(t.clone().requires_grad_() for t in params.values())
    text = web.export_html(as_tuple, tmp_path / "d.html").read_text()
    assert embedded(text)["hidden"] == 32
    assert "784 &rarr; 32 &rarr; 10, 25,450 parameters" in text


def test_export_takes_what_lesson_07_saves(tmp_path):
    params = seeded_params()
    torch.save(params, tmp_path / "mnist_mlp.pt")
    loaded = torch.load(tmp_path / "mnist_mlp.pt", weights_only=True)
    assert web.page_html(loaded) == web.page_html(params)


@pytest.mark.parametrize("change, message", [
    (lambda p: p.pop("b2"), "lacks b2"),
    (lambda p: p.update(W1=p["W1"].T.contiguous()), "transposed"),
    (lambda p: p.update(b1=torch.zeros(64)), "b1 must have shape [128]"),
    (lambda p: p.update(W2=torch.zeros(128, 9)), "W2 must have shape [128, 10]"),
    (lambda p: p["W1"].__setitem__((0, 0), float("nan")), "NaN"),
    (lambda p: p.update(b2=[0.0] * 10), "must be a torch.Tensor"),
])
def test_export_refuses_wrong_parameters_with_a_reason(tmp_path, change, message):
    params = seeded_params()
    change(params)
    with pytest.raises((KeyError, ValueError, TypeError), match=re.escape(message)):
        web.export_html(params, tmp_path / "d.html")
    assert not (tmp_path / "d.html").exists()


def test_export_wants_an_html_name(tmp_path):
    with pytest.raises(ValueError, match=".html"):
        web.export_html(seeded_params(), tmp_path / "digits.txt")


def test_probabilities_are_the_course_forward_pass():
    params = seeded_params()
    X, _ = load_mnist("test")
    x = X[:16]
    expected = torch.softmax(torch.relu(x @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"], dim=1)
    got = web.probabilities(params, x)
    assert got.dtype == torch.float32 and got.shape == (16, 10)
    assert torch.equal(got, expected)
    assert web.probabilities(params, x[0]).shape == (1, 10)


# ---------------------------------------------------------------- preparing a drawing

def bbox(image: torch.Tensor, ink: float = web.INK) -> tuple[int, int]:
    rows = (image > ink).any(1).nonzero().flatten()
    cols = (image > ink).any(0).nonzero().flatten()
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def centre_of_mass(image: torch.Tensor) -> tuple[float, float]:
    image = image.double()
    total = image.sum()
    return (float((image.sum(1) * torch.arange(image.shape[0])).sum() / total),
            float((image.sum(0) * torch.arange(image.shape[1])).sum() / total))


def stroke_image(size: int = 280, seed: int = 0) -> torch.Tensor:
    """A drawing: a few thick random segments somewhere on a black pad, antialiased."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    image = torch.zeros(size, size)
    points = torch.rand(4, 2, generator=g) * size * 0.5 + size * 0.1 * torch.rand(2, generator=g)
    for (y0, x0), (y1, x1) in zip(points[:-1].tolist(), points[1:].tolist()):
        dy, dx = y1 - y0, x1 - x0
        t = (((ys - y0) * dy + (xs - x0) * dx) / max(dy * dy + dx * dx, 1e-9)).clamp(0, 1)
        dist = ((ys - y0 - t * dy) ** 2 + (xs - x0 - t * dx) ** 2).sqrt()
        image = torch.maximum(image, (10.5 - dist).clamp(0, 1))
    return image


@pytest.mark.parametrize("seed", range(6))
def test_a_drawing_becomes_an_mnist_style_digit(seed):
    image = stroke_image(seed=seed)
    x = web.preprocess_drawing(image)
    assert x.dtype == torch.float32 and x.shape == (784,)
    assert 0 <= x.min() and x.max() <= 1
    out = x.reshape(28, 28)
    h, w = bbox(image)
    oh, ow = bbox(out, ink=0)
    assert max(oh, ow) in (20, 21), f"the longer side should be 20 pixels, got {oh}x{ow}"   # +1: an edge's faint ink
    longer, shorter = (oh, ow) if h >= w else (ow, oh)
    assert abs(shorter / longer - min(h, w) / max(h, w)) < 0.12, "the aspect ratio is kept"
    cy, cx = centre_of_mass(out)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5, f"centre of mass at ({cy:.2f}, {cx:.2f})"


def test_where_and_how_big_a_digit_is_drawn_does_not_matter():
    X, _ = load_mnist("test")
    digit = X[0].reshape(28, 28)
    big = torch.zeros(280, 280)
    big[40:264, 30:254] = F.interpolate(digit[None, None], scale_factor=8, mode="nearest")[0, 0]
    moved = torch.roll(big, shifts=(-35, 20), dims=(0, 1))
    a, b = web.preprocess_drawing(big), web.preprocess_drawing(moved)
    assert torch.equal(a, b), "moving the drawing on the pad must not change what the network sees"
    assert torch.corrcoef(torch.stack([a, X[0]]))[0, 1] > 0.9, "an MNIST digit drawn 8x larger comes back close to itself"


def test_uint8_grey_levels_equal_floats_in_0_1():
    image = (stroke_image(seed=3) * 255).round().to(torch.uint8)
    assert torch.equal(web.preprocess_drawing(image), web.preprocess_drawing(image.float() / 255))
    assert torch.equal(web.preprocess_drawing(image.numpy()), web.preprocess_drawing(image))


def test_a_thin_line_and_a_dot_keep_their_shape():
    line = torch.zeros(200, 200)
    line[20:180, 99] = 1.0                     # 160 x 1: the short side rounds to 1 pixel
    out = web.preprocess_drawing(line).reshape(28, 28)
    assert bbox(out, ink=0) == (20, 1)
    assert torch.allclose(out[out > 0], torch.ones(20))
    dot = torch.zeros(50, 50)
    dot[10, 10] = 1.0                          # 1 x 1, blown up to 20 x 20
    out = web.preprocess_drawing(dot).reshape(28, 28)
    assert bbox(out, ink=0) == (20, 20) and torch.equal(out[5:25, 5:25], torch.ones(20, 20))   # 14 - 9.5 rounds up


def test_a_blank_or_invalid_drawing_is_refused():
    with pytest.raises(ValueError, match="empty drawing"):
        web.preprocess_drawing(torch.zeros(280, 280))
    with pytest.raises(ValueError, match="empty drawing"):
        web.preprocess_drawing(torch.full((10, 10), web.INK))           # at the threshold is not ink
    with pytest.raises(ValueError, match="2-D"):
        web.preprocess_drawing(torch.ones(1, 28, 28))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        web.preprocess_drawing(torch.full((5, 5), 2.0))
    with pytest.raises(TypeError, match="uint8"):
        web.preprocess_drawing(torch.ones(5, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match="NaN"):
        web.preprocess_drawing(torch.full((5, 5), float("nan")))


@pytest.mark.parametrize("n, m", [(280, 20), (161, 20), (100, 13), (20, 20), (7, 20), (1, 20), (45, 1), (3, 2)])
def test_resampling_is_torchs_antialiased_bilinear(n, m):
    A = web.resample_matrix(n, m)
    assert A.shape == (m, n) and torch.allclose(A.sum(1), torch.ones(m, dtype=torch.float64))
    assert (A >= 0).all()
    line = torch.rand(3, n, generator=torch.Generator().manual_seed(n * 100 + m), dtype=torch.float64)
    if m > 1:                                  # torch's kernel mishandles an output of width 1 (2.13)
        expected = F.interpolate(line[:, None, None, :], size=(1, m), mode="bilinear", align_corners=False,
                                 antialias=True)[:, 0, 0, :]
        assert torch.allclose(line @ A.T, expected, atol=1e-12)
    else:
        # one output pixel: the triangle over the whole line, centred on its middle
        centre = n / 2
        w = torch.tensor([max(0.0, 1 - abs((j + 0.5 - centre) / n)) for j in range(n)], dtype=torch.float64)
        assert torch.allclose(A[0], w / w.sum())


def test_the_page_prepares_drawings_like_the_notebook_pad():
    """Lesson 10's pad and the page see a drawing alike: the pad checks its input, then uses this recipe."""
    from grader.widgets import canvas

    for seed in range(4):
        image = stroke_image(seed=seed)
        assert torch.equal(web.preprocess_drawing(image), canvas.preprocess_drawing(image)), f"stroke seed {seed}"
    line = torch.zeros(200, 50)
    line[20:180, 30] = 1.0                      # one pixel wide: scaled to a side of 1 pixel
    assert torch.equal(web.preprocess_drawing(line), canvas.preprocess_drawing(line))
    with pytest.raises(TypeError, match="uint8"):
        canvas.preprocess_drawing((line * 255).to(torch.uint8))     # the pad's own contract: floats only
