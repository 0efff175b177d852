"""Ablation sweeps: a grid of settings x seeds, each an ordinary training run, summarised as a table and plots.

    python -m vmp_jax.ablate --config configs/ablation_init.py --workdir runs/ablation_init

An ablation config (see configs/ablation_init.py) has three keys: `base` (a training config), `settings` (a list
of {'name', 'overrides'}; overrides map dotted training-config keys to values, e.g. {'model.vmp.pn': 'gamma'})
and `seeds`. Run (setting, seed) trains `base` + overrides with `seed` into `DIR/<name>/seed_<seed>/` through
`train_lib.train_and_evaluate`, so each run checkpoints and resumes like `train.py`; a run that finished has a
`result.json` and is skipped, so a sweep killed halfway continues where it stopped when rerun. A run directory
whose saved config disagrees with what the sweep now asks for is refused rather than silently mixed.

Results (rewritten after every run, so a partial sweep has a partial table):
  DIR/results.md, DIR/results.csv    per setting: mean ± std over seeds of the final eval top-1 and mean-class
                                     accuracy, and of the learned VMP coefficients (slope a, shift b; or the
                                     power normalisation's gamma / eta)
  DIR/accuracy.png                   accuracy per setting (mean ± std over seeds)
  DIR/coefficients.png               the learned a and b (and gamma / eta) over training, mean over seeds
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from typing import Any, Callable, Iterable, Sequence

import jax
import ml_collections
import numpy as np

from vmp_jax import trained_run
from vmp_jax.motion_prompt import PN_COEFFICIENT_SYMBOLS
from vmp_jax.metric_writers import read_metrics

RESULT = "result.json"
# Learned coefficients as logged by train_lib (`vmp_<name>`), with their symbols.
COEFFICIENTS = PN_COEFFICIENT_SYMBOLS


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    overrides: dict[str, Any]


def settings_from_config(config: ml_collections.ConfigDict) -> list[Setting]:
    """The sweep's settings, checked: unique names usable as directory names, overrides as a mapping."""
    settings = []
    for i, entry in enumerate(config.settings):
        entry = dict(entry)
        if set(entry) != {"name", "overrides"}:
            raise ValueError(f"settings[{i}] must have exactly the keys 'name' and 'overrides', got {sorted(entry)}")
        name, overrides = str(entry["name"]), dict(entry["overrides"])
        if not name or name != os.path.basename(name) or name.startswith("."):
            raise ValueError(f"settings[{i}].name={name!r}: expected a plain directory name")
        settings.append(Setting(name, overrides))
    names = [s.name for s in settings]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"setting names must be unique, repeated: {duplicates}")
    if not settings:
        raise ValueError("config.settings is empty: nothing to sweep")
    if not config.seeds:
        raise ValueError("config.seeds is empty: expected at least one seed")
    return settings


def run_config(base: ml_collections.ConfigDict, setting: Setting, seed: int) -> ml_collections.ConfigDict:
    """`base` with the setting's overrides and `seed`; an unknown key raises naming the setting and the key."""
    config = ml_collections.ConfigDict(base.to_dict())
    for key, value in setting.overrides.items():
        *path, last = key.split(".")
        target = config
        for depth, part in enumerate(path):
            if part not in target or not isinstance(target[part], ml_collections.ConfigDict):
                raise ValueError(f"setting {setting.name!r}: override {key!r} names no config section "
                                 f"{'.'.join(path[:depth + 1])!r}")
            target = target[part]
        if last not in target:
            raise ValueError(f"setting {setting.name!r}: override {key!r} is not a training-config key "
                             f"(section {'.'.join(path) or 'top level'} has {sorted(target.keys())})")
        target[last] = value
    config.seed = int(seed)
    return config


def sweep_configs(base: ml_collections.ConfigDict, settings: Sequence[Setting], seeds: Sequence[int],
                  num_devices: int, num_processes: int = 1) -> dict[tuple[str, int], ml_collections.ConfigDict]:
    """{(setting name, seed): training config}, each validated as train.py would (errors name the setting)."""
    from vmp_jax import config_checks

    configs = {}
    for setting in settings:
        for seed in seeds:
            config = run_config(base, setting, seed)
            try:
                config_checks.validate(config, num_devices=num_devices, num_processes=num_processes)
            except ValueError as e:
                raise ValueError(f"setting {setting.name!r}: {e}") from None
            configs[setting.name, seed] = config
    return configs


def run_dir(workdir: str, setting: Setting, seed: int) -> str:
    return os.path.join(workdir, setting.name, f"seed_{seed}")


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def check_same_config(directory: str, config: ml_collections.ConfigDict) -> None:
    """Refuses to resume a run directory trained with another config (e.g. after the sweep file changed)."""
    path = os.path.join(directory, trained_run.CONFIG)
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        saved = _flat(json.load(f))
    wanted = _flat(json.loads(config.to_json_best_effort()))
    differ = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
    if differ:
        details = ", ".join(f"{k}: saved {saved.get(k)!r}, now {wanted.get(k)!r}" for k in differ[:5])
        raise ValueError(f"{directory} holds a run with another config ({details}); delete it or rename the "
                         "setting to rerun it")


def finished_result(directory: str) -> dict | None:
    path = os.path.join(directory, RESULT)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def run_result(directory: str, setting: Setting, seed: int) -> dict:
    """The final eval metrics and learned coefficients of a finished run, from its metrics.jsonl."""
    evals, train = read_metrics(directory, "eval"), read_metrics(directory, "train")
    if not evals or not train:
        raise ValueError(f"{directory}/metrics.jsonl has no eval or train rows: the run did not finish")
    final_eval, final_train = evals[-1], train[-1]
    return {
        "setting": setting.name, "seed": seed, "overrides": setting.overrides, "step": final_eval["step"],
        "top1": final_eval["top1"], "mean_class_accuracy": final_eval["mean_class_accuracy"],
        "top5": final_eval.get("top5"),
        "coefficients": {name: final_train[f"vmp_{name}"] for name in COEFFICIENTS if f"vmp_{name}" in final_train},
    }


def run_sweep(base: ml_collections.ConfigDict, settings: Sequence[Setting], seeds: Sequence[int], workdir: str,
              train_fn: Callable[[ml_collections.ConfigDict, str], Any] | None = None,
              log: Callable[[str], None] = print) -> bool:
    """Trains every (setting, seed) not yet finished, writing the summary after each; True if all finished.

    Returns False as soon as a run stops before its last step (SIGTERM/SIGINT): rerun to continue.
    """
    from vmp_jax import train_lib  # a heavy import, not needed to summarise

    train_fn = train_fn or train_lib.train_and_evaluate
    workdir = os.path.abspath(workdir)
    configs = sweep_configs(base, settings, seeds, jax.device_count(), jax.process_count())
    for setting in settings:  # every run is checked before the first one starts
        for seed in seeds:
            check_same_config(run_dir(workdir, setting, seed), configs[setting.name, seed])
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "sweep.json"), "w", encoding="utf-8") as f:
        json.dump({"settings": [dataclasses.asdict(s) for s in settings], "seeds": list(seeds),
                   "base": json.loads(base.to_json_best_effort())}, f, indent=2)

    total = len(settings) * len(seeds)
    for i, (setting, seed) in enumerate((s, seed) for s in settings for seed in seeds):
        directory = run_dir(workdir, setting, seed)
        if finished_result(directory) is not None:
            log(f"[{i + 1}/{total}] {setting.name} seed {seed}: finished earlier, skipped")
            continue
        log(f"[{i + 1}/{total}] {setting.name} seed {seed}: training into {directory}")
        state = train_fn(configs[setting.name, seed], directory)
        if int(jax.device_get(state.step)) < trained_run.read_run_info(directory)["total_steps"]:
            log(f"Sweep stopped during {setting.name} seed {seed}; rerun the same command to continue.")
            write_summary(workdir, settings, seeds)
            return False
        result = run_result(directory, setting, seed)
        with open(os.path.join(directory, RESULT), "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
        write_summary(workdir, settings, seeds)
    return True


# ----------------------------------------------------------------------------------------------- summary


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
    found = (finished_result(run_dir(workdir, s, seed)) for s in settings for seed in seeds)
    return [r for r in found if r is not None]


def _overrides_text(overrides: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "(base)"


def _fmt(mean_std: tuple[float, float], scale: float = 1.0, digits: int = 1) -> str:
    mean, std = mean_std
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def _coefficient_digits(mean: float) -> int:
    return 1 if abs(mean) >= 10 else 3


def markdown_table(rows: Sequence[dict]) -> str:
    lines = ["| setting | overrides | seeds | top-1 (%) | mean-class acc. (%) | learned coefficients |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        learned = ", ".join(f"{symbol} = {_fmt(row[name], digits=_coefficient_digits(row[name][0]))}"
                            for name, symbol in COEFFICIENTS.items() if name in row) or "—"
        lines.append(f"| {row['setting']} | `{_overrides_text(row['overrides'])}` | {len(row['seeds'])} | "
                     f"{_fmt(row['top1'], 100)} | {_fmt(row['mean_class_accuracy'], 100)} | {learned} |")
    return "\n".join(lines) + "\n"


def write_csv(rows: Sequence[dict], path: str) -> None:
    columns = ["setting", "overrides", "num_seeds", "top1_mean", "top1_std", "mean_class_accuracy_mean",
               "mean_class_accuracy_std"] + [f"{n}_{s}" for n in COEFFICIENTS for s in ("mean", "std")]
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
        per_seed = [read_metrics(run_dir(workdir, setting, seed), "train") for seed in seeds
                    if finished_result(run_dir(workdir, setting, seed)) is not None]
        for name in COEFFICIENTS:
            series = [([r["step"] for r in rows], [r[f"vmp_{name}"] for r in rows]) for rows in per_seed
                      if rows and f"vmp_{name}" in rows[0]]
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
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(4.2 * max(len(names), 1), 3.4), dpi=100,
                             squeeze=False)
    settings = list(dict.fromkeys(s for name in names for s in curves[name]))
    colours = plt.get_cmap("tab20")
    for ax, name in zip(axes[0], names):
        for setting, (steps, mean) in curves[name].items():  # a setting keeps its colour in every panel
            ax.plot(steps, mean, label=setting, color=colours(settings.index(setting) % 20),
                    linestyle="-" if settings.index(setting) < 10 else "--")
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
    header = (f"# Ablation: {os.path.basename(os.path.abspath(workdir))}\n\n{done} of "
              f"{len(settings) * len(seeds)} runs finished (seeds {list(seeds)}); final eval, mean ± std over "
              "seeds.\n\n")
    with open(os.path.join(workdir, "results.md"), "w", encoding="utf-8") as f:
        f.write(header + markdown_table(rows))
    write_csv(rows, os.path.join(workdir, "results.csv"))
    plot_accuracy(rows, os.path.join(workdir, "accuracy.png"))
    plot_coefficients(coefficient_curves(workdir, settings, seeds), os.path.join(workdir, "coefficients.png"))
    return rows


# ----------------------------------------------------------------------------------------------- command line


def main(argv: Sequence[str]) -> None:
    from absl import app, flags, logging

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = flags.FLAGS["config"].value
    from vmp_jax import distributed

    distributed.set_cpu_devices(flags.FLAGS["cpu_devices"].value,
                                (config.base.batch_size, config.base.eval_batch_size))
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    settings = settings_from_config(config)
    seeds = [int(s) for s in config.seeds]
    workdir = flags.FLAGS["workdir"].value
    if flags.FLAGS["summarise_only"].value:
        rows = write_summary(os.path.abspath(workdir), settings, seeds)
        print(f"{sum(len(r['seeds']) for r in rows)} finished runs summarised in {workdir}")
        return
    finished = run_sweep(config.base, settings, seeds, workdir)
    if finished:
        print(f"All {len(settings) * len(seeds)} runs finished: {os.path.join(workdir, 'results.md')}")
        with open(os.path.join(workdir, "results.md"), encoding="utf-8") as f:
            print(f.read())


def _define_flags() -> None:
    from absl import flags
    from ml_collections import config_flags

    config_flags.DEFINE_config_file("config", None, "Ablation config (base, settings, seeds).", lock_config=True)
    flags.DEFINE_string("workdir", None, "Sweep directory: one subdirectory per setting and seed.", required=True)
    flags.DEFINE_integer("cpu_devices", -1, "CPU devices per process, as in train.py (-1: one per core).")
    flags.DEFINE_bool("summarise_only", False, "Only rewrite the table and plots from the finished runs.")
    flags.mark_flag_as_required("config")


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
