"""Lesson 10's widgets: the ATen tracer, the component inspector, the equivalence table, and the
digit pad's drawing, preprocessing and classification (the plain functions behind the views)."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from grader.data import load_mnist  # noqa: E402
from grader.widgets import canvas as pad  # noqa: E402
from grader.widgets import nn as demo  # noqa: E402

TORCH_CLASSES = {"Linear": nn.Linear, "ReLU": nn.ReLU, "Dropout": nn.Dropout,
                 "CrossEntropyLoss": nn.CrossEntropyLoss, "SGD": torch.optim.SGD, "Adam": torch.optim.Adam}


# --- the tracer ---------------------------------------------------------------------------

def test_trace_ops_reads_the_dispatcher():
    torch.manual_seed(0)
    layer = nn.Linear(6, 4)
    x = torch.randn(3, 6)
    out, ops = demo.trace_ops(layer, x)
    assert torch.equal(out, layer(x))
    assert any(line.startswith("aten.addmm(") for line in ops), ops          # nn.Linear is one fused addmm
    assert any("-> [3, 4]" in line for line in ops)
    _, ops = demo.trace_ops(lambda a: (a @ layer.weight.T + layer.bias).clamp(min=0), x)
    names = [line.split("(")[0] for line in ops]
    assert "aten.mm" in names and "aten.add" in names and names[-1].startswith("aten.clamp")
    assert names.index("aten.mm") < names.index("aten.add")                  # in the order they ran
    assert all("profiler" not in line for line in ops)


def test_trace_ops_explains_known_ops_and_shows_scalars():
    _, ops = demo.trace_ops(lambda a: a * 2.5, torch.ones(2, 2))
    assert ops == ["aten.mul([2, 2], 2.5) -> [2, 2]    # elementwise *"]


def test_max_diff():
    a = torch.tensor([1.0, 2.0, 3.0])
    assert demo.max_diff(a, a.clone()) == 0.0
    assert demo.max_diff(a, torch.tensor([1.0, 2.5, 3.0])) == pytest.approx(0.5)
    assert demo.max_diff(a, torch.ones(2)) == math.inf                       # shapes differ
    assert demo.max_diff(torch.tensor([float("nan")]), torch.tensor([0.0])) == math.inf
    assert demo.max_diff(torch.zeros(0), torch.zeros(0)) == 0.0


# --- the inspector --------------------------------------------------------------------------

@pytest.mark.parametrize("name", demo.COMPONENTS)
def test_inspect_component_agrees_with_torch_itself(name):
    # torch's own classes passed as "mine": the same computation, so no difference at all
    result = demo.inspect_component(name, seed=3, mine=TORCH_CLASSES)
    assert result["mine_error"] is None
    assert result["max_diff"] == 0.0, result
    assert result["ops_text"].startswith("aten.") and result["mine_ops_text"]
    assert isinstance(result["torch_out"], torch.Tensor)
    assert "(source not available)" not in result["mine_source"]
    html = demo.inspector_html(result)
    assert "identical" in html and "DIFFERENT" not in html


def test_inspect_component_is_seeded():
    a = demo.inspect_component("Linear", seed=1, mine=TORCH_CLASSES)
    b = demo.inspect_component("Linear", seed=1, mine=TORCH_CLASSES)
    c = demo.inspect_component("Linear", seed=2, mine=TORCH_CLASSES)
    assert torch.equal(a["torch_out"], b["torch_out"]) and not torch.equal(a["torch_out"], c["torch_out"])


class NoBias(nn.Linear):
    def forward(self, x):
        return x @ self.weight.T


class Unscaled(nn.Dropout):
    def forward(self, x):
        return super().forward(x) * (1 - self.p) if self.training else x


class EpsInside(torch.optim.Adam):
    def __init__(self, params, lr=1e-3):
        super().__init__(params, lr=lr, eps=1e-1)


class Broken(nn.Module):
    def forward(self, x):
        raise NotImplementedError()


@pytest.mark.parametrize("name, cls, key", [("Linear", NoBias, "Linear"), ("Dropout", Unscaled, "Dropout"),
                                            ("Adam step", EpsInside, "Adam")])
def test_inspect_component_shows_a_wrong_version(name, cls, key):
    result = demo.inspect_component(name, seed=0, mine={**TORCH_CLASSES, key: cls})
    assert result["mine_error"] is None
    assert result["max_diff"] > 1e-3, result["max_diff"]
    assert "DIFFERENT" in demo.inspector_html(result)


def test_inspect_component_reports_errors_without_raising():
    result = demo.inspect_component("ReLU", mine={"ReLU": Broken})
    assert result["mine_error"].startswith("NotImplementedError")
    assert math.isnan(result["max_diff"]) and result["mine_out"] is None
    assert "your version raised" in demo.inspector_html(result)


def test_inspect_component_bad_arguments():
    with pytest.raises(ValueError, match="unknown component"):
        demo.inspect_component("Conv2d", mine=TORCH_CLASSES)
    with pytest.raises(KeyError, match="Linear"):
        demo.inspect_component("Linear", mine={})
    with pytest.raises(ValueError, match="unknown component"):
        demo.inspector(TORCH_CLASSES, component="nope")


def test_inspector_widget_builds_and_redraws():
    view = demo.inspector(TORCH_CLASSES, component="ReLU")
    picker, seed, pane = view.children
    assert "aten.relu" in pane.value
    picker.value = "Adam step"
    assert "aten.addcdiv_" in pane.value                   # torch's Adam ends with one fused addcdiv_
    seed.value = 5
    assert "identical" in pane.value


# --- the equivalence table ---------------------------------------------------------------------

def test_verdicts():
    assert demo.verdict(0.0, 1e-6) == "identical"
    assert demo.verdict(1e-7, 1e-6) == "same to rounding"
    assert demo.verdict(1e-5, 1e-6) == "DIFFERENT"
    assert demo.verdict(float("nan"), 1e-6) == "DIFFERENT"
    assert demo.verdict(math.inf, 1e-6) == "DIFFERENT"
    assert demo.verdict(0, 0) == "identical" and demo.verdict(1, 0) == "DIFFERENT"
    assert demo.verdict(0.001, 0.005, noise=True) == "same within sampling noise"
    assert demo.verdict(0.01, 0.005, noise=True) == "DIFFERENT"


def test_equivalence_table_rows_and_html():
    table = demo.EquivalenceTable()
    assert not table.all_pass()                            # an empty table proves nothing
    table.add("x @ W.T + b", "nn.Linear", "outputs", 1.2e-7)
    table.add("<clamp>", "nn.ReLU", "outputs", 0.0)
    assert table.all_pass() and len(table.rows) == 2
    table.add("x @ W.T + b", "nn.Linear", "outputs again", 0.5)       # re-running a cell replaces its row
    assert len(table.rows) == 2 and table.rows[-1].verdict == "DIFFERENT" and not table.all_pass()
    html = table.html()
    assert "&lt;clamp&gt;" in html and "<clamp>" not in html           # escaped
    assert html.count("<tr>") == 3 and "1.2e-07" not in html and "0.5" in html
    assert table._repr_html_() == html
    with pytest.raises(ValueError):
        table.add("a", "b", "c", 0.0, tol=-1)


# --- the pictures -------------------------------------------------------------------------------

def test_dropout_means_show_the_scaling():
    full, same = demo.dropout_means(lambda h: h, 0.5)
    assert full == pytest.approx(same)
    full, dropped = demo.dropout_means(lambda h: F.dropout(h, 0.5, training=True) * 0.5, 0.5)
    assert dropped == pytest.approx(full * 0.5, rel=0.02)                   # 400 x 256 draws: well within 2%
    # a mask drawn with rand_like must be independent of the values it masks (same seed -> same draws)
    for p in (0.2, 0.8):
        full, kept = demo.dropout_means(lambda h: h * (torch.rand_like(h) >= p), p)
        assert kept == pytest.approx(full * (1 - p), rel=0.02)
    fig = demo.plot_dropout_means([0.2, 0.5], plain=lambda h, p: F.dropout(h, p) * (1 - p),
                                  inverted=lambda h, p: F.dropout(h, p))
    assert len(fig.axes[0].patches) == 6
    plt.close(fig)


def test_plot_parity():
    fig = demo.plot_parity([2.0, 1.0], [2.0, 1.0], [0.0, 1e-7])
    assert len(fig.axes) == 2 and fig.axes[1].get_yscale() == "log"
    plt.close(fig)


# --- the finale: fit, choose on validation, test once ---------------------------------------------

def _history(val_accs, fit_accs=None):
    fit_accs = fit_accs or [a + 0.01 for a in val_accs]
    return [{"epoch": i + 1, "fit_loss": 1.0 / (i + 2), "fit_acc": f, "val_loss": 1.5 / (i + 2), "val_acc": v}
            for i, (f, v) in enumerate(zip(fit_accs, val_accs))]


def test_choose_on_validation_reads_only_validation_and_prefers_the_earlier_tie():
    histories = {"a": _history([0.90, 0.95, 0.94]), "b": _history([0.91, 0.93, 0.95], fit_accs=[1.0, 1.0, 1.0])}
    assert demo.choose_on_validation(histories) == ("a", 2)         # 0.95 first reached by a at epoch 2
    histories["b"][0]["val_acc"] = 0.96
    assert demo.choose_on_validation(histories) == ("b", 1)
    # fit accuracy (or anything but validation) never decides
    histories = {"a": _history([0.9, 0.9], fit_accs=[0.5, 0.5]), "b": _history([0.9, 0.9], fit_accs=[1.0, 1.0])}
    assert demo.choose_on_validation(histories) == ("a", 1)
    with pytest.raises(ValueError):
        demo.choose_on_validation({"a": []})


def test_gap_rows_and_plot_train_val():
    histories = {"no dropout": _history([0.90, 0.92], fit_accs=[0.93, 0.99]),
                 "Dropout(0.5)": _history([0.89, 0.93], fit_accs=[0.90, 0.95])}
    rows = demo.gap_rows(histories)
    assert [r["candidate"] for r in rows] == ["no dropout", "Dropout(0.5)"]
    assert rows[0]["gap"] == pytest.approx(0.07) and rows[1]["gap"] == pytest.approx(0.02)
    assert rows[0]["epochs"] == 2 and rows[1]["best_epoch"] == 2 and rows[1]["best_val_acc"] == 0.93
    fig = demo.plot_train_val(histories)
    left, right = fig.axes
    assert len(left.lines) == 4                                        # fit and validation, per candidate
    gaps = [line.get_ydata() for line in right.lines[:2]]                 # then the zero line
    assert len(gaps) == 2 and gaps[0][-1] == pytest.approx(7.0)      # in percentage points
    plt.close(fig)


# --- drawing -------------------------------------------------------------------------------------

def test_stamp_line_dot_is_a_round_antialiased_disc():
    raster = torch.zeros(40, 40)
    out = pad.stamp_line(raster, 20, 10, 20, 10, radius=5)
    assert out is raster                                    # in place
    assert raster[10, 20] == 1 and raster[10, 24] == 1      # inside the brush
    assert raster[10, 26] == 0 and raster[16, 20] == 0      # beyond radius + 0.5
    assert raster[10, 25] == 0.5                            # the antialiased rim: radius + 0.5 - 5
    assert torch.equal(raster[:, 20 - 8:20 + 9], raster[:, 20 - 8:20 + 9].flip(1))    # symmetric left-right
    assert raster.min() >= 0 and raster.max() <= 1


def test_stamp_line_covers_the_segment_and_keeps_ink():
    raster = torch.zeros(50, 50)
    raster[0, 0] = 0.7
    pad.stamp_line(raster, 5, 25, 45, 25, radius=2)
    assert (raster[25, 5:46] == 1).all()                    # the whole segment is inked
    assert raster[20, 25] == 0 and raster[0, 0] == pytest.approx(0.7)
    pad.stamp_line(raster, -30, -30, -10, -10, radius=3)    # entirely outside: nothing, no error
    pad.stamp_line(raster, 45, 45, 80, 80, radius=3)        # partly outside: the inside part is painted
    assert raster[49, 49] == 1
    with pytest.raises(ValueError, match="radius"):
        pad.stamp_line(raster, 0, 0, 1, 1, radius=0)
    with pytest.raises(ValueError, match="2-D float"):
        pad.stamp_line(torch.zeros(5, 5, dtype=torch.long), 0, 0, 1, 1, radius=1)


def test_place_image_scales_and_clips():
    img = torch.zeros(28, 28)
    img[10:18, 12:16] = 1.0
    placed = pad.place_image(img, size=280, scale=5, top=20, left=30)
    assert placed.shape == (280, 280) and placed.max() <= 1
    rows = placed.gt(0.5).any(1).nonzero().flatten()
    cols = placed.gt(0.5).any(0).nonzero().flatten()
    assert abs(rows[0].item() - (20 + 50)) <= 2 and abs(rows[-1].item() - (20 + 90)) <= 2
    assert abs(cols[0].item() - (30 + 60)) <= 2
    clipped = pad.place_image(img, size=100, scale=5, top=-60, left=80)     # mostly outside: cut, no error
    assert clipped.shape == (100, 100)
    with pytest.raises(ValueError):
        pad.place_image(img, scale=0.01)


# --- preprocessing ---------------------------------------------------------------------------------

def _bbox(image28: torch.Tensor) -> tuple[int, int]:
    ink = image28 > pad.INK
    rows = ink.any(1).nonzero().flatten()
    cols = ink.any(0).nonzero().flatten()
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


@pytest.fixture(scope="module")
def mnist_test():
    return load_mnist("test")


@pytest.fixture(scope="module")
def trained_net():
    """A small MLP trained for one epoch on 20,000 MNIST images (about 96% test accuracy)."""
    torch.manual_seed(0)
    X, y = load_mnist("train")
    X, y = X[:20_000], y[:20_000]
    net = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    order = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))
    for start in range(0, len(X), 100):
        idx = order[start:start + 100]
        loss = F.cross_entropy(net(X[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def test_preprocess_contract_on_mnist_digits(mnist_test):
    X, _ = mnist_test
    unchanged = 0
    for i in range(100):
        image = X[i].reshape(28, 28)
        before = image.clone()
        out = pad.preprocess_drawing(image)
        assert torch.equal(image, before), "preprocess_drawing must not modify its input"
        assert out.shape == (784,) and out.dtype == torch.float32
        assert out.min() >= 0 and out.max() <= 1
        cy, cx = pad.centre_of_mass(out.reshape(28, 28))
        assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5         # whole-pixel shifts: within half a pixel
        unchanged += torch.equal(out, X[i])
    # MNIST digits are already 20 px and centred: nearly all come back bit for bit (measured 97 of 100)
    assert unchanged >= 90, unchanged


def test_preprocess_recovers_digits_drawn_large_and_off_centre(mnist_test, trained_net):
    X, y = mnist_test
    right_orig = right_pre = 0
    for i in range(150):
        scale, top, left = 3 + i % 8, (i * 37) % 70, (i * 53) % 70
        drawn = pad.place_image(X[i].reshape(28, 28), size=300, scale=scale, top=top, left=left)
        out = pad.preprocess_drawing(drawn)
        image = out.reshape(28, 28)
        cy, cx = pad.centre_of_mass(image)
        assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1, (i, cy, cx)     # the centre of mass is centred
        assert max(_bbox(image)) in (19, 20), (i, _bbox(image))         # the longest side is 20 px
        with torch.no_grad():
            right_pre += int(trained_net(out[None]).argmax()) == int(y[i])
            right_orig += int(trained_net(X[i:i + 1]).argmax()) == int(y[i])
    # a network trained on MNIST reads the preprocessed drawings about as well as the originals
    # (measured: 0.7 points apart on 300 digits with a stronger network); 3 points of slack, and at least 90%
    assert right_pre >= right_orig - 5 and right_pre >= 135, (right_pre, right_orig)


def test_preprocess_keeps_the_aspect_ratio():
    tall = torch.zeros(200, 200)
    tall[50:150, 90:100] = 1.0                                          # 100 x 10: a "1"
    image = pad.preprocess_drawing(tall).reshape(28, 28)
    assert _bbox(image) == (20, 2)
    wide = torch.zeros(100, 300)
    wide[40:50, 20:220] = 1.0                                           # 10 x 200
    h, w = _bbox(pad.preprocess_drawing(wide).reshape(28, 28))
    assert w == 20 and h == 1
    tiny = torch.zeros(64, 64)
    tiny[30:35, 30:33] = 1.0                                            # a small dot is enlarged
    h, w = _bbox(pad.preprocess_drawing(tiny).reshape(28, 28))
    assert h == 20 and w in (11, 12, 13)


def test_preprocess_off_balance_digit_stays_in_frame():
    # a shape whose centre of mass is far from its box centre: centring would push ink out; it stays in
    img = torch.zeros(100, 100)
    img[10:90, 10:12] = 1.0
    img[10:14, 10:90] = 1.0                                             # a thin "Γ" with a heavy top
    img[10:30, 70:90] = 1.0
    out = pad.preprocess_drawing(img).reshape(28, 28)
    assert out.sum() == pytest.approx(F.interpolate(img[10:90, 10:90][None, None], size=(20, 20), mode="bilinear",
                                                    antialias=True, align_corners=False).sum().item(), rel=1e-4)


def test_preprocess_empty_and_bad_inputs():
    with pytest.raises(ValueError, match="empty drawing"):
        pad.preprocess_drawing(torch.zeros(280, 280))
    with pytest.raises(ValueError, match="empty drawing"):
        pad.preprocess_drawing(torch.full((10, 10), pad.INK / 2))       # faint noise is not ink
    assert pad.is_blank(torch.zeros(3, 3)) and not pad.is_blank(torch.eye(3))
    with pytest.raises(ValueError, match="2-D"):
        pad.preprocess_drawing(torch.zeros(1, 28, 28))
    with pytest.raises(TypeError, match="float"):
        pad.preprocess_drawing(torch.zeros(28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pad.preprocess_drawing(torch.full((28, 28), 255.0))
    with pytest.raises(ValueError, match="NaN"):
        pad.preprocess_drawing(torch.full((28, 28), float("nan")))
    with pytest.raises(TypeError, match="torch.Tensor"):
        pad.preprocess_drawing([[0.0, 1.0]])
    with pytest.raises(ValueError):
        pad.centre_of_mass(torch.zeros(4, 4))


# --- classifying and the pad ------------------------------------------------------------------------

def test_classify_and_bars(mnist_test, trained_net):
    X, y = mnist_test
    drawn = pad.place_image(X[0].reshape(28, 28), size=280, scale=6, top=10, left=100)
    probs, x = pad.classify(trained_net, drawn)
    assert probs.shape == (10,) and probs.sum().item() == pytest.approx(1, abs=1e-5)
    assert int(probs.argmax()) == int(y[0]) and x.shape == (784,)
    html = pad.bars_html(probs)
    assert f"It looks like a <b>{int(y[0])}</b>" in html and html.count("%</span>") == 10
    assert "Draw a digit" in pad.bars_html(None)
    with pytest.raises(ValueError):
        pad.bars_html(torch.ones(3))
    with pytest.raises(ValueError, match=r"\[1, 10\]"):
        pad.classify(lambda b: torch.zeros(1, 5), drawn)


def test_to_rgba():
    rgba = pad.to_rgba(torch.tensor([[0.0, 1.0]]), zoom=3)
    assert rgba.shape == (3, 6, 4) and rgba.dtype.name == "uint8"
    assert rgba[0, 0, 0] == 0 and rgba[0, 5, 0] == 255 and (rgba[..., 3] == 255).all()


def test_digit_pad_without_a_browser(mnist_test, trained_net):
    X, y = mnist_test
    p = pad.DigitPad(trained_net, size=140, brush=5)
    assert p.probs is None and "Draw a digit" in p.bars.value
    probs = p.show_image(pad.place_image(X[3].reshape(28, 28), size=140, scale=4, top=5, left=20))
    assert int(probs.argmax()) == int(y[3]) and p.probs is probs
    assert f"<b>{int(y[3])}</b>" in p.bars.value
    p.clear()
    assert p.raster.sum() == 0 and p.probs is None
    # mouse events, as the browser would send them
    p._down(70, 20)
    p._move(70, 60)
    p._move(72, 120)
    p._up(72, 120)
    assert p.raster[40, 70] == 1 and p.probs is not None
    p.stroke([(20, 20), (120, 20)])
    assert p.raster[20, 60] == 1
    with pytest.raises(ValueError, match="140x140"):
        p.show_image(torch.zeros(28, 28))
    # a model that fails shows its error instead of breaking the pad
    bad = pad.DigitPad(lambda b: (_ for _ in ()).throw(RuntimeError("boom")), size=60, brush=4)
    assert bad.show_image(pad.place_image(X[0].reshape(28, 28), size=60, scale=2, top=0, left=0)) is None
    assert "boom" in bad.bars.value and bad.error.startswith("RuntimeError")


def test_plot_result(mnist_test, trained_net):
    X, y = mnist_test
    drawn = pad.place_image(X[5].reshape(28, 28), size=280, scale=7)
    probs, x = pad.classify(trained_net, drawn)
    fig = pad.plot_result(drawn, x, probs, label=int(y[5]))
    assert len(fig.axes) == 3 and f"label {int(y[5])}" in fig.axes[2].get_title()
    plt.close(fig)
