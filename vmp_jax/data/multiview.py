"""Multi-view evaluation: average the softmax of K clips x 3 crops per video, then top-1/top-5/mean-class accuracy.

Pure numpy. Feed it every eval batch's logits with the batch's 'video_index', 'label' and 'mask' (gathered to the
host); padding (mask False) is ignored. Mean-class accuracy (FineGym's headline metric) is the mean over classes
of per-class top-1 recall, over the classes that occur in the eval set.
"""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64.  logits: (N, C) -> (N, C)."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


class MultiViewAccumulator:
    """Accumulates per-view probabilities by video index; `result()` gives per-video metrics."""

    def __init__(self, num_classes: int, num_views: int | None = None):
        self.num_classes, self.num_views = num_classes, num_views
        self._prob_sum: dict[int, np.ndarray] = {}
        self._count: dict[int, int] = {}
        self._label: dict[int, int] = {}

    def update(self, logits, video_index, label, mask=None) -> None:
        """logits: (b, C) float; video_index, label: (b,) int; mask: (b,) bool (None: all valid)."""
        logits = np.asarray(logits)
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"logits of shape {logits.shape}; expected (batch, {self.num_classes})")
        video_index, label = np.asarray(video_index).reshape(-1), np.asarray(label).reshape(-1)
        mask = np.ones(len(logits), bool) if mask is None else np.asarray(mask, bool).reshape(-1)
        probs = softmax(logits)
        for p, v, y in zip(probs[mask], video_index[mask].tolist(), label[mask].tolist()):
            if v in self._label and self._label[v] != y:
                raise ValueError(f"video {v}: views disagree on the label ({self._label[v]} vs {y})")
            self._label[v] = y
            self._prob_sum[v] = self._prob_sum.get(v, 0.0) + p
            self._count[v] = self._count.get(v, 0) + 1

    def video_probabilities(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(video_ids (V,), mean probabilities (V, C), labels (V,)), sorted by video id."""
        ids = np.array(sorted(self._label), np.int64)
        probs = (
            np.stack([self._prob_sum[v] / self._count[v] for v in ids]) if len(ids) else np.zeros((0, self.num_classes))
        )
        return ids, probs, np.array([self._label[v] for v in ids], np.int64)

    def result(self) -> dict[str, float]:
        """{'top1', 'top5', 'mean_class_accuracy', 'num_videos', 'incomplete_videos'} over the accumulated videos."""
        ids, probs, labels = self.video_probabilities()
        if not len(ids):
            raise ValueError("no valid eval views were accumulated")
        metrics = accuracies(probs, labels)
        incomplete = 0 if self.num_views is None else sum(self._count[v] != self.num_views for v in ids.tolist())
        return {**metrics, "num_videos": len(ids), "incomplete_videos": incomplete}

    def confusion_matrix(self) -> np.ndarray:
        _, probs, labels = self.video_probabilities()
        return confusion_matrix(probs.argmax(-1), labels, self.num_classes)


def accuracies(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Top-1, top-5 (top-min(5, C)) and mean-class accuracy.  probs: (V, C); labels: (V,) int."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    k = min(5, probs.shape[1])
    # Ties are broken toward the lower class index, as argmax does.
    order = np.argsort(-probs, axis=1, kind="stable")
    top1 = order[:, 0] == labels
    top5 = (order[:, :k] == labels[:, None]).any(axis=1)
    classes = np.unique(labels)
    per_class = [top1[labels == c].mean() for c in classes]
    return {"top1": float(top1.mean()), "top5": float(top5.mean()), "mean_class_accuracy": float(np.mean(per_class))}


def confusion_matrix(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 (C, C): entry [true, predicted]."""
    m = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(m, (np.asarray(labels), np.asarray(predictions)), 1)
    return m


def save_confusion_png(matrix: np.ndarray, path: str, class_names: list[str] | None = None) -> None:
    """Row-normalised confusion matrix as a PNG (matplotlib, headless)."""
    import matplotlib  # pylint: disable=g-import-not-at-top

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

    rows = matrix.sum(1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros(matrix.shape, float), where=rows > 0)
    n = len(matrix)
    fig, ax = plt.subplots(figsize=(max(4, n * 0.25), max(4, n * 0.25)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if class_names is not None and n <= 40:
        ax.set_xticks(range(n), class_names, rotation=90, fontsize=6)
        ax.set_yticks(range(n), class_names, fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
