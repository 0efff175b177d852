"""Running an ablation sweep: every (setting, seed) an ordinary training run in its own directory, skipped once
finished, with the summary (`vmp_jax.ablate.summary`) rewritten after each."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections

from vmp_jax.ablate.settings import Setting, run_config, run_directory
from vmp_jax.ablate.summary import COEFFICIENTS, finished_result, write_summary
from vmp_jax.training import run_dir, validation
from vmp_jax.training.metric_writers import read_metrics
from vmp_jax.training.resume import config_differences


def sweep_configs(
    base: ml_collections.ConfigDict,
    settings: Sequence[Setting],
    seeds: Sequence[int],
    num_devices: int,
    num_processes: int = 1,
) -> dict[tuple[str, int], ml_collections.ConfigDict]:
    """{(setting name, seed): training config}, each validated as train.py would (errors name the setting)."""
    configs = {}
    for setting in settings:
        for seed in seeds:
            config = run_config(base, setting, seed)
            try:
                validation.validate(config, num_devices=num_devices, num_processes=num_processes)
            except ValueError as e:
                raise ValueError(f"setting {setting.name!r}: {e}") from None
            configs[setting.name, seed] = config
    return configs


def check_same_config(directory: str, config: ml_collections.ConfigDict) -> None:
    """Refuses to resume a run directory trained with another config (e.g. after the sweep file changed)."""
    path = os.path.join(directory, run_dir.CONFIG)
    if not os.path.exists(path):
        return
    differ = config_differences(run_dir.read_json(path), config)
    if differ:
        details = ", ".join(f"{k}: saved {old!r}, now {new!r}" for k, (old, new) in list(differ.items())[:5])
        raise ValueError(
            f"{directory} holds a run with another config ({details}); delete it or rename the setting to rerun it"
        )


def run_result(directory: str, setting: Setting, seed: int) -> dict:
    """The final eval metrics and learned coefficients of a finished run, from its metrics.jsonl."""
    evals, train = read_metrics(directory, "eval"), read_metrics(directory, "train")
    if not evals or not train:
        raise ValueError(f"{directory}/metrics.jsonl has no eval or train rows: the run did not finish")
    final_eval, final_train = evals[-1], train[-1]
    return {
        "setting": setting.name,
        "seed": seed,
        "overrides": setting.overrides,
        "step": final_eval["step"],
        "top1": final_eval["top1"],
        "mean_class_accuracy": final_eval["mean_class_accuracy"],
        "top5": final_eval.get("top5"),
        "coefficients": {name: final_train[f"vmp_{name}"] for name in COEFFICIENTS if f"vmp_{name}" in final_train},
    }


def run_sweep(
    base: ml_collections.ConfigDict,
    settings: Sequence[Setting],
    seeds: Sequence[int],
    workdir: str,
    train_fn: Callable[[ml_collections.ConfigDict, str], Any] | None = None,
    log: Callable[[str], None] = print,
) -> bool:
    """Trains every (setting, seed) not yet finished, writing the summary after each; True if all finished.

    Returns False as soon as a run stops before its last step (SIGTERM/SIGINT): rerun to continue.
    """
    if train_fn is None:
        from vmp_jax.training.run import train_and_evaluate as train_fn  # a heavy import, not needed to summarise

    workdir = os.path.abspath(workdir)
    configs = sweep_configs(base, settings, seeds, jax.device_count(), jax.process_count())
    for setting in settings:  # every run is checked before the first one starts
        for seed in seeds:
            check_same_config(run_directory(workdir, setting, seed), configs[setting.name, seed])
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, run_dir.SWEEP_FILE), "w", encoding="utf-8") as f:
        json.dump(
            {
                "settings": [dataclasses.asdict(s) for s in settings],
                "seeds": list(seeds),
                "base": json.loads(base.to_json_best_effort()),
            },
            f,
            indent=2,
        )

    total = len(settings) * len(seeds)
    for i, (setting, seed) in enumerate((s, seed) for s in settings for seed in seeds):
        directory = run_directory(workdir, setting, seed)
        if finished_result(directory) is not None:
            log(f"[{i + 1}/{total}] {setting.name} seed {seed}: finished earlier, skipped")
            continue
        log(f"[{i + 1}/{total}] {setting.name} seed {seed}: training into {directory}")
        state = train_fn(configs[setting.name, seed], directory)
        if int(jax.device_get(state.step)) < run_dir.read_run_info(directory)["total_steps"]:
            log(f"Sweep stopped during {setting.name} seed {seed}; rerun the same command to continue.")
            write_summary(workdir, settings, seeds)
            return False
        result = run_result(directory, setting, seed)
        with open(os.path.join(directory, run_dir.RESULT), "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
        write_summary(workdir, settings, seeds)
    return True
