import math

import pytest
import torch

from binplay.metrics import (
    average_accuracy,
    backward_transfer,
    confusion_matrix,
    equal_memory_buffer,
    forgetting,
    most_confused,
    psnr,
)

# After task 1: 100; after task 2: task 1 drops to 80; after task 3: 60, 70, 90.
MATRIX = [[100.0], [80.0, 95.0], [60.0, 70.0, 90.0]]


def test_average_accuracy_is_mean_of_last_row():
    assert average_accuracy(MATRIX) == pytest.approx((60 + 70 + 90) / 3)


def test_forgetting_uses_best_earlier_accuracy():
    # task 1: best 100 -> 60 (40); task 2: best 95 -> 70 (25).
    assert forgetting(MATRIX) == pytest.approx(32.5)
    assert forgetting([[50.0]]) == 0.0


def test_forgetting_with_recovery():
    # Task 1 improves after task 2 (70 -> 90), then drops to 85: forgetting counts from 90.
    assert forgetting([[70.0], [90.0, 80.0], [85.0, 80.0, 99.0]]) == pytest.approx(2.5)


def test_backward_transfer():
    # (60 - 100) and (70 - 95) -> mean -32.5; positive when old tasks improve.
    assert backward_transfer(MATRIX) == pytest.approx(-32.5)
    assert backward_transfer([[50.0], [70.0, 90.0]]) == pytest.approx(20.0)


def test_padded_rows_are_accepted():
    padded = [[100.0, None, None], [80.0, 95.0, None], [60.0, 70.0, 90.0]]
    assert average_accuracy(padded) == average_accuracy(MATRIX)


def test_psnr():
    assert psnr(0.01) == pytest.approx(20.0)
    assert psnr(0.0) == math.inf


def test_equal_memory_buffer():
    # 1 MB of decoder = 1,048,576 bytes = 1335 MNIST images of 784 bytes + a label byte.
    assert equal_memory_buffer(1.0, (1, 28, 28)) == 1335  # 2**20 // (784 + 1)


def test_empty_matrix_is_an_error():
    with pytest.raises(ValueError):
        average_accuracy([])


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    labels, predicted = [0, 0, 0, 1, 2, 2], [0, 2, 2, 1, 0, 2]
    matrix = confusion_matrix(labels, predicted, 4)
    assert matrix == [[1, 0, 2, 0], [0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    worst = most_confused(matrix, top=2)
    assert worst == [{"true": 0, "predicted": 2, "count": 2, "percent_of_class": 66.67},
                     {"true": 2, "predicted": 0, "count": 1, "percent_of_class": 50.0}]
    assert most_confused(confusion_matrix([1, 2], [1, 2], 3)) == []  # all right: nothing to list
    with pytest.raises(ValueError):
        confusion_matrix([0, 1], [0], 2)


def test_figures_name_classes_and_tick_whole_tasks(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from unittest import mock

    import matplotlib.pyplot as plt

    from binplay.report import _figures, class_name

    assert class_name("fashion_mnist", 0) == "T-shirt/top" and class_name("cifar10", 9) == "truck"
    assert class_name("parquet", 3) == "c3"
    titles, ticks = [], []
    real_subplots = plt.subplots

    def spy(*args, **kwargs):
        fig, axes = real_subplots(*args, **kwargs)
        for ax in (axes.flat if hasattr(axes, "flat") else [axes]):
            ax.set_title = mock.Mock(side_effect=lambda text, _ax=ax, **kw: titles.append(text))
            real_ticks = ax.set_xticks

            def record(values, *a, _real=real_ticks, **kw):
                ticks.append(list(values))
                return _real(values, *a, **kw)

            ax.set_xticks = record
        return fig, axes

    grid = {"labels": [[0, [0, 1]]], "original": [torch.zeros(2, 1, 4, 4, dtype=torch.uint8)],
            "regenerated": [torch.zeros(2, 1, 4, 4, dtype=torch.uint8)]}
    report = {"dataset": "fashion_mnist", "accuracy_matrix": [[90.0], [80.0, 85.0], [70.0, 75.0, 95.0]]}
    with mock.patch.object(plt, "subplots", spy):
        _figures(report, [grid], tmp_path)
    assert "real T-shirt/top" in titles and "regen Trouser" in titles
    assert [1, 2, 3] in ticks  # accuracy curves: whole tasks on the x axis
