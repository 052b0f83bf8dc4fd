"""Lesson 06's widget logic: coloured batches, the gradient-agreement and sorted-vs-shuffled measurements."""

from __future__ import annotations

import math
from collections import Counter

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from grader import reference  # noqa: E402
from grader.widgets import batching as b  # noqa: E402


def test_sorted_labels_are_sorted_and_balanced():
    labels = b.sorted_labels(60)
    assert labels == sorted(labels)
    assert Counter(labels) == {c: 6 for c in range(10)}
    assert b.sorted_labels(0) == []
    assert b.sorted_labels(7, classes=3) == [0, 0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="classes"):
        b.sorted_labels(10, classes=11)


def test_batch_colours_in_order_slices_the_file_order():
    labels = b.sorted_labels(60)
    batches = b.batch_colours(labels, 8, shuffle=False)
    assert [len(x) for x in batches] == [8] * 7 + [4]          # 60 = 7 * 8 + 4: the last batch is smaller
    assert [label for batch in batches for label in batch] == labels
    assert b.classes_per_batch(batches) == [2, 2, 2, 2, 2, 2, 2, 1]


def test_batch_colours_shuffled_is_pytorchs_order_and_mixes_classes():
    labels = b.sorted_labels(60)
    batches = b.batch_colours(labels, 8, shuffle=True, seed=3)
    expected = [[labels[i] for i in idx.tolist()] for idx in
                reference.index_batches(60, 8, torch.Generator().manual_seed(3))]
    assert batches == expected
    assert Counter(label for batch in batches for label in batch) == Counter(labels)   # every sample once
    assert b.batch_colours(labels, 8, shuffle=True, seed=3) == batches                   # seeded: reproducible
    assert b.batch_colours(labels, 8, shuffle=True, seed=4) != batches
    mean_classes = sum(b.classes_per_batch(batches)) / len(batches)
    assert mean_classes > 4, f"shuffled batches of 8 should mix classes, got {mean_classes:.1f} on average"


def test_batch_colours_edge_cases():
    assert b.batch_colours([], 8, shuffle=True) == []
    assert b.batch_colours([3], 8, shuffle=True) == [[3]]
    assert b.batch_colours(torch.tensor([1, 2, 3]), 1, shuffle=False) == [[1], [2], [3]]
    assert b.batch_colours([5, 6], 100, shuffle=False) == [[5, 6]]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "8"])
def test_batch_colours_rejects_a_bad_batch_size(bad):
    with pytest.raises(ValueError, match="batch_size"):
        b.batch_colours([0, 1, 2], bad, shuffle=False)


@pytest.mark.parametrize("bad", [[0, 10], [-1], [1.0, 2.0], torch.tensor([0.5]), torch.zeros(2, 2, dtype=torch.long)])
def test_batch_colours_rejects_bad_labels(bad):
    with pytest.raises(ValueError, match="labels"):
        b.batch_colours(bad, 2, shuffle=False)


def test_grid_html_draws_one_square_per_sample_and_one_row_per_batch():
    batches = b.batch_colours(b.sorted_labels(60), 8, shuffle=False)
    sliced = b.grid_html(batches, sliced=True)
    strip = b.grid_html(batches, sliced=False)
    for html in (sliced, strip):
        assert html.count("<span style='display:inline-block;width:26px") == 60
        assert b.PALETTE[0] in html and b.PALETTE[9] in html
    assert "batch 8" in sliced and "batch 9" not in sliced
    assert "batch 1" not in strip
    assert "1 class<" in sliced and "2 classes" in sliced


def test_summary():
    assert b.summary([]) == "no samples"
    assert b.summary([[0, 0], [1, 2]]) == "2 batches; classes per batch: mean 1.5, min 1, max 2"


def test_shuffle_widget_reacts_to_its_controls_without_waiting():
    box = b.shuffle_widget(batch_size=8, seed=0)
    (shuffle, sliced, again), size, line, view = box.children[0].children, *box.children[1:]
    start = view.value
    assert "in file order" in line.value and "batch 1" not in start
    sliced.value = True
    assert "batch 8" in view.value and "classes per batch" in line.value
    unshuffled = view.value
    shuffle.value = True
    assert view.value != unshuffled and "seed 0" in line.value
    first = view.value
    again.click()
    assert "seed 1" in line.value and view.value != first
    size.value = 60
    assert "batch 1" in view.value and "batch 2" not in view.value


def test_shuffle_widget_rejects_a_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        b.shuffle_widget(batch_size=0)


def _blobs(n_per_class=200, classes=3, dim=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 3
    X = torch.cat([centres[c] + torch.randn(n_per_class, dim, generator=g) for c in range(classes)])
    y = torch.arange(classes).repeat_interleave(n_per_class)            # sorted by class
    return X, y


def test_gradient_agreement_grows_with_the_batch():
    X, y = _blobs()
    result = b.gradient_agreement(X, y, [1, 16, 256], trials=10, seed=0)
    assert sorted(result) == [1, 16, 256]
    cosines = [result[s][0] for s in (1, 16, 256)]
    assert all(-1 <= c <= 1 for c in cosines)
    assert cosines[0] < cosines[1] < cosines[2], cosines
    assert cosines[2] > 0.9, cosines                                     # 256 of 600 samples: nearly the full gradient
    assert all(result[s][1] > 0 for s in result)
    assert b.gradient_agreement(X, y, [16], trials=3, seed=1)[16][0] == \
        b.gradient_agreement(X, y, [16], trials=3, seed=1)[16][0]      # seeded: reproducible


def test_gradient_agreement_rejects_bad_input():
    X, y = _blobs()
    with pytest.raises(ValueError, match="X"):
        b.gradient_agreement(X, y[:-1], [4])
    with pytest.raises(ValueError, match="trials"):
        b.gradient_agreement(X, y, [4], trials=0)
    with pytest.raises(ValueError, match="batch_size"):
        b.gradient_agreement(X, y, [0])


def test_training_on_class_sorted_batches_is_worse_than_shuffled():
    X, y = _blobs()
    X_eval, y_eval = _blobs(n_per_class=50, seed=1)
    sorted_batches = [list(range(i, min(i + 20, 600))) for i in range(0, 600, 20)]
    shuffled_batches = reference.index_batches(600, 20, torch.Generator().manual_seed(0))
    sorted_run = b.train_on_batches(X, y, sorted_batches, X_eval, y_eval, lr=0.1)
    shuffled_run = b.train_on_batches(X, y, shuffled_batches, X_eval, y_eval, lr=0.1)
    for batch_losses, eval_losses, predicted in (sorted_run, shuffled_run):
        assert len(batch_losses) == len(eval_losses) == 30
        # zero weights predict a uniform distribution: the first loss is ln(3) (float32 rounding, 1e-6)
        assert abs(batch_losses[0] - math.log(3)) < 1e-6
        assert predicted.shape == (150,) and predicted.dtype == torch.long
    assert shuffled_run[1][-1] < sorted_run[1][-1]
    # the sorted run ends having seen only class 2 for a while: it answers 2 far more often than a third of the time
    assert (sorted_run[2] == 2).float().mean() > (shuffled_run[2] == 2).float().mean()
    with pytest.raises(ValueError, match="lr"):
        b.train_on_batches(X, y, sorted_batches, X_eval, y_eval, lr=0)


def test_plots_have_two_panels():
    X, y = _blobs()
    fig = b.plot_gradient_agreement(b.gradient_agreement(X, y, [1, 8], trials=2))
    assert len(fig.axes) == 2
    run = b.train_on_batches(X, y, [[0, 1], [2, 3]], X, y)
    fig = b.plot_order_effect({"class-sorted": run, "shuffled": run}, y, batch_size=20)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) >= 2


def test_measurements_leave_the_thread_count_as_it_was():
    X, y = _blobs()
    before = torch.get_num_threads()
    b.gradient_agreement(X, y, [4], trials=1)
    b.train_on_batches(X, y, [[0, 1]], X, y)
    assert torch.get_num_threads() == before
