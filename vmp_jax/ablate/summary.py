"""The summary of an ablation sweep (vmp_jax.ablate): a table and plots of the finished runs, rewritten after each.

  DIR/results.md, DIR/results.csv    per setting: mean ± std over seeds of the final eval top-1 and mean-class
                                     accuracy, and of the learned VMP coefficients (slope a, shift b; or the
                                     power normalisation's gamma / eta)
  DIR/accuracy.png                   accuracy per setting (mean ± std over seeds)
  DIR/coefficients.png               the learned a and b (and gamma / eta) over training, mean over seeds

A finished run is `DIR/<setting>/seed_<seed>/` with a `result.json` (`sweep.run_result`: the final eval metrics
and learned coefficients); the curves come from the runs' `metrics.jsonl`. Settings are anything with a `name` and
an `overrides` mapping (`settings.Setting`). matplotlib is imported only to draw the plots.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence

import numpy as np

from vmp_jax.ablate.settings import Setting, run_directory
from vmp_jax.motion_prompt import PN_COEFFICIENT_SYMBOLS
from vmp_jax.training import run_dir
from vmp_jax.training.metric_writers import read_metrics

# Learned coefficients as logged by the train step (`vmp_<name>`), with their symbols.
COEFFICIENTS = PN_COEFFICIENT_SYMBOLS


def finished_result(directory: str) -> dict | None:
    path = os.path.join(directory, run_dir.RESULT)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    arr = np.asarray(values, np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def summarise(results: Iterable[dict], settings: Sequence[Setting]) -> list[dict]:
    """One row per setting with finished runs: seeds, mean/std of top-1, mean-class accuracy, coefficients."""
    by_setting: dict[str, list[dict]] = {}
    for r in results:
        by_setting.setdefault(r["setting"], []).append(r)
    rows = []
    for setting in settings:
        runs = sorted(by_setting.get(setting.name, []), key=lambda r: r["seed"])
        if not runs:
            continue
        row = {"setting": setting.name, "overrides": setting.overrides, "seeds": [r["seed"] for r in runs]}
        for key in ("top1", "mean_class_accuracy"):
            row[key] = _mean_std([r[key] for r in runs])
        for name in COEFFICIENTS:
            values = [r["coefficients"][name] for r in runs if name in r["coefficients"]]
            if values:
                row[name] = _mean_std(values)
        rows.append(row)
    return rows


def collect(workdir: str, settings: Sequence[Setting], seeds: Sequence[int]) -> list[dict]:
    """The result.json of every finished run of the sweep."""
    found = (finished_result(run_directory(workdir, s, seed)) for s in settings for seed in seeds)
    return [r for r in found if r is not None]


def _overrides_text(overrides: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "(base)"


def _fmt(mean_std: tuple[float, float], scale: float = 1.0, digits: int = 1) -> str:
    mean, std = mean_std
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def _coefficient_digits(mean: float) -> int:
    return 1 if abs(mean) >= 10 else 3


def markdown_table(rows: Sequence[dict]) -> str:
    lines = [
        "| setting | overrides | seeds | top-1 (%) | mean-class acc. (%) | learned coefficients |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        learned = (
            ", ".join(
                f"{symbol} = {_fmt(row[name], digits=_coefficient_digits(row[name][0]))}"
                for name, symbol in COEFFICIENTS.items()
                if name in row
            )
            or "—"
        )
        lines.append(
            f"| {row['setting']} | `{_overrides_text(row['overrides'])}` | {len(row['seeds'])} | "
            f"{_fmt(row['top1'], 100)} | {_fmt(row['mean_class_accuracy'], 100)} | {learned} |"
        )
    return "\n".join(lines) + "\n"


def write_csv(rows: Sequence[dict], path: str) -> None:
    columns = [
        "setting",
        "overrides",
        "num_seeds",
        "top1_mean",
        "top1_std",
        "mean_class_accuracy_mean",
        "mean_class_accuracy_std",
    ] + [f"{n}_{s}" for n in COEFFICIENTS for s in ("mean", "std")]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for row in rows:
            out = {"setting": row["setting"], "overrides": json.dumps(row["overrides"]), "num_seeds": len(row["seeds"])}
            for key in ["top1", "mean_class_accuracy", *COEFFICIENTS]:
                if key in row:
                    out[f"{key}_mean"], out[f"{key}_std"] = row[key]
            writer.writerow(out)


def plot_accuracy(rows: Sequence[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["setting"] for r in rows]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2), dpi=100)
    for offset, key, label in ((-0.2, "top1", "top-1"), (0.2, "mean_class_accuracy", "mean-class accuracy")):
        means = [100 * r[key][0] for r in rows]
        stds = [100 * r[key][1] for r in rows]
        ax.barh(y + offset, means, height=0.4, xerr=stds, capsize=2, label=label)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("eval accuracy (%), mean ± std over seeds")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def coefficient_curves(workdir: str, settings: Sequence[Setting], seeds: Sequence[int]) -> dict:
    """{coefficient: {setting: (steps, mean over finished seeds)}} from the runs' train metrics."""
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for setting in settings:
        per_seed = [
            read_metrics(run_directory(workdir, setting, seed), "train")
            for seed in seeds
            if finished_result(run_directory(workdir, setting, seed)) is not None
        ]
        for name in COEFFICIENTS:
            series = [
                ([r["step"] for r in rows], [r[f"vmp_{name}"] for r in rows])
                for rows in per_seed
                if rows and f"vmp_{name}" in rows[0]
            ]
            if not series:
                continue
            length = min(len(s[0]) for s in series)
            steps = np.asarray(series[0][0][:length])
            mean = np.mean([s[1][:length] for s in series], axis=0)
            curves.setdefault(name, {})[setting.name] = (steps, mean)
    return curves


def plot_coefficients(curves: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in COEFFICIENTS if n in curves]
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4.2 * max(len(names), 1), 3.4), dpi=100, squeeze=False)
    settings = list(dict.fromkeys(s for name in names for s in curves[name]))
    colours = plt.get_cmap("tab20")
    for ax, name in zip(axes[0], names):
        for setting, (steps, mean) in curves[name].items():  # a setting keeps its colour in every panel
            ax.plot(
                steps,
                mean,
                label=setting,
                color=colours(settings.index(setting) % 20),
                linestyle="-" if settings.index(setting) < 10 else "--",
            )
        ax.set_title(f"learned {COEFFICIENTS[name]} ({name})")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if name in ("gamma", "eta"):
            ax.set_yscale("log")
        ax.legend(fontsize=6)
    if not names:
        axes[0][0].text(0.5, 0.5, "no VMP coefficients logged", ha="center", va="center")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_summary(workdir: str, settings: Sequence[Setting], seeds: Sequence[int]) -> list[dict]:
    """Writes results.md, results.csv, accuracy.png and coefficients.png from the finished runs; returns rows."""
    rows = summarise(collect(workdir, settings, seeds), settings)
    if not rows:
        return rows
    done = sum(len(r["seeds"]) for r in rows)
    header = (
        f"# Ablation: {os.path.basename(os.path.abspath(workdir))}\n\n{done} of "
        f"{len(settings) * len(seeds)} runs finished (seeds {list(seeds)}); final eval, mean ± std over "
        "seeds.\n\n"
    )
    with open(os.path.join(workdir, run_dir.SUMMARY_FILES["table"]), "w", encoding="utf-8") as f:
        f.write(header + markdown_table(rows))
    write_csv(rows, os.path.join(workdir, run_dir.SUMMARY_FILES["csv"]))
    plot_accuracy(rows, os.path.join(workdir, run_dir.SUMMARY_FILES["accuracy"]))
    plot_coefficients(
        coefficient_curves(workdir, settings, seeds), os.path.join(workdir, run_dir.SUMMARY_FILES["coefficients"])
    )
    return rows
