"""Ablation sweeps: a grid of settings x seeds, each an ordinary training run, summarised as a table and plots.

    python -m vmp_jax.ablate --config configs/ablation_init.py --workdir runs/ablation_init [--summarise_only]

An ablation config (see configs/ablation_init.py) has three keys: `base` (a training config), `settings` (a list
of {'name', 'overrides'}; overrides map dotted training-config keys to values, e.g. {'model.vmp.pn': 'gamma'})
and `seeds`. Run (setting, seed) trains `base` + overrides with `seed` into `DIR/<name>/seed_<seed>/` through
`train_lib.train_and_evaluate`, so each run checkpoints and resumes like `train.py`; a run that finished has a
`result.json` and is skipped, so a sweep killed halfway continues where it stopped when rerun. A run directory
whose saved config disagrees with what the sweep now asks for is refused rather than silently mixed.

Results (vmp_jax.ablation_summary; rewritten after every run, so a partial sweep has a partial table):
  DIR/results.md, DIR/results.csv    per setting: mean ± std over seeds of the final eval top-1 and mean-class
                                     accuracy, and of the learned VMP coefficients (slope a, shift b; or the
                                     power normalisation's gamma / eta)
  DIR/accuracy.png                   accuracy per setting (mean ± std over seeds)
  DIR/coefficients.png               the learned a and b (and gamma / eta) over training, mean over seeds
--summarise_only rewrites them from the finished runs. A mistake in the config or the flags prints one line
`error: ...` and exits with status 2.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import ml_collections
from absl import flags, logging
from ml_collections import config_flags

from vmp_jax import cli, trained_run

# The summary is its own module; its names are importable from here as before.
from vmp_jax.ablation_summary import (
    COEFFICIENTS,
    RESULT,
    coefficient_curves,
    collect,
    finished_result,
    markdown_table,
    plot_accuracy,
    plot_coefficients,
    run_dir,
    summarise,
    write_csv,
    write_summary,
)
from vmp_jax.metric_writers import read_metrics

# The summary's names stay importable from here, where they lived before vmp_jax.ablation_summary.
__all__ = [
    "COEFFICIENTS",
    "RESULT",
    "Setting",
    "check_same_config",
    "coefficient_curves",
    "collect",
    "finished_result",
    "main",
    "markdown_table",
    "plot_accuracy",
    "plot_coefficients",
    "run_config",
    "run_dir",
    "run_result",
    "run_sweep",
    "settings_from_config",
    "summarise",
    "sweep_configs",
    "write_csv",
    "write_summary",
]


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
                raise ValueError(
                    f"setting {setting.name!r}: override {key!r} names no config section "
                    f"{'.'.join(path[: depth + 1])!r}"
                )
            target = target[part]
        if last not in target:
            raise ValueError(
                f"setting {setting.name!r}: override {key!r} is not a training-config key "
                f"(section {'.'.join(path) or 'top level'} has {sorted(target.keys())})"
            )
        target[last] = value
    config.seed = int(seed)
    return config


def sweep_configs(
    base: ml_collections.ConfigDict,
    settings: Sequence[Setting],
    seeds: Sequence[int],
    num_devices: int,
    num_processes: int = 1,
) -> dict[tuple[str, int], ml_collections.ConfigDict]:
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
    from vmp_jax import train_lib  # a heavy import, not needed to summarise

    train_fn = train_fn or train_lib.train_and_evaluate
    workdir = os.path.abspath(workdir)
    configs = sweep_configs(base, settings, seeds, jax.device_count(), jax.process_count())
    for setting in settings:  # every run is checked before the first one starts
        for seed in seeds:
            check_same_config(run_dir(workdir, setting, seed), configs[setting.name, seed])
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "sweep.json"), "w", encoding="utf-8") as f:
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


# ----------------------------------------------------------------------------------------------- command line


def _define_flags(flag_values: flags.FlagValues, argv: Sequence[str] | None = None) -> None:
    """The flags, on `flag_values`; config overrides are read from `argv` (None: sys.argv)."""
    define = dict(flag_values=flag_values)
    config_flags.DEFINE_config_file(
        "config", None, "Ablation config (base, settings, seeds).", lock_config=True, sys_argv=argv, **define
    )
    flags.DEFINE_string(
        "workdir", None, "Sweep directory: one subdirectory per setting and seed.", required=True, **define
    )
    flags.DEFINE_integer("cpu_devices", -1, "CPU devices per process, as in train.py (-1: one per core).", **define)
    flags.DEFINE_bool("summarise_only", False, "Only rewrite the table and plots from the finished runs.", **define)
    flags.mark_flag_as_required("config", flag_values=flag_values)


def _command(argv: list[str], flag_values: flags.FlagValues) -> None:
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments: {argv[1:]}")
    from vmp_jax import distributed

    config = flag_values.config
    note = distributed.set_cpu_devices(flag_values.cpu_devices, (config.base.batch_size, config.base.eval_batch_size))
    if note:
        cli.say(note)
    if "verbosity" not in flag_values or not flag_values["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    settings = settings_from_config(config)
    seeds = [int(s) for s in config.seeds]
    workdir = cli.output_dir(flag_values.workdir, "workdir")
    if flag_values.summarise_only:
        rows = write_summary(os.path.abspath(workdir), settings, seeds)
        cli.say(f"{sum(len(r['seeds']) for r in rows)} finished runs summarised in {workdir}")
        return
    if run_sweep(config.base, settings, seeds, workdir, log=cli.say):
        with open(os.path.join(workdir, "results.md"), encoding="utf-8") as f:
            cli.say(
                f"All {len(settings) * len(seeds)} runs finished: {os.path.join(workdir, 'results.md')}\n{f.read()}"
            )


def main(argv: Sequence[str]) -> int:
    """`python -m vmp_jax.ablate ARGV...` in this process; returns the exit status (2: a user error)."""
    return cli.call(_command, _define_flags, argv, prog="python -m vmp_jax.ablate")


if __name__ == "__main__":
    cli.run(_command, _define_flags)
