"""Multi-view aggregation: averaged softmax per video, top-1/top-5/mean-class accuracy, confusion matrix."""

import numpy as np
import pytest

from vmp_jax.data import multiview


def test_average_of_softmax_not_of_logits():
    acc = multiview.MultiViewAccumulator(num_classes=2, num_views=2)
    # Views (0, 3) and (1, 0): softmax (0.047, 0.953) and (0.731, 0.269) -> mean (0.389, 0.611).
    acc.update(np.array([[0.0, 3.0], [1.0, 0.0]]), video_index=[4, 4], label=[1, 1])
    ids, probs, labels = acc.video_probabilities()
    p = (multiview.softmax(np.array([[0.0, 3.0]])) + multiview.softmax(np.array([[1.0, 0.0]]))) / 2
    np.testing.assert_allclose(probs, p)
    assert ids.tolist() == [4] and labels.tolist() == [1]


def test_metrics_hand_computed_and_mask():
    acc = multiview.MultiViewAccumulator(num_classes=6, num_views=3)
    logits = np.zeros((9, 6))
    # video 0 (label 0): all views say 0 -> top1. video 1 (label 1): say 2 -> wrong, label ranked 2nd -> top5.
    # video 2 (label 1): says 1 -> top1.
    logits[0:3, 0] = 5
    logits[3:6, 2], logits[3:6, 1] = 5, 4
    logits[6:9, 1] = 5
    vids, labels = np.repeat([0, 1, 2], 3), np.repeat([0, 1, 1], 3)
    acc.update(logits, vids, labels)
    acc.update(np.full((2, 6), 100.0), [-1, -1], [-1, -1], mask=[False, False])  # padding is ignored
    r = acc.result()
    assert r["top1"] == pytest.approx(2 / 3) and r["top5"] == 1.0 and r["num_videos"] == 3
    assert r["mean_class_accuracy"] == pytest.approx((1.0 + 0.5) / 2)  # class 0: 1/1, class 1: 1/2
    assert r["incomplete_videos"] == 0
    np.testing.assert_array_equal(acc.confusion_matrix()[:3, :3], [[1, 0, 0], [0, 1, 1], [0, 0, 0]])


def test_disagreeing_labels_and_incomplete_views(tmp_path):
    acc = multiview.MultiViewAccumulator(num_classes=3, num_views=2)
    acc.update(np.zeros((1, 3)), [0], [1])
    assert acc.result()["incomplete_videos"] == 1
    with pytest.raises(ValueError, match="disagree"):
        acc.update(np.zeros((1, 3)), [0], [2])
    with pytest.raises(ValueError, match="logits"):
        acc.update(np.zeros((1, 4)), [0], [1])
    multiview.save_confusion_png(acc.confusion_matrix(), str(tmp_path / "cm.png"), ["a", "b", "c"])
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"
