"""Ablation sweeps: a grid of settings x seeds, each an ordinary training run, summarised as a table and plots.

    python -m vmp_jax.ablate --config configs/ablation_init.py --workdir runs/ablation_init [--summarise_only]

An ablation config (see configs/ablation_init.py) has three keys: `base` (a training config), `settings` (a list
of {'name', 'overrides'}; overrides map dotted training-config keys to values, e.g. {'model.vmp.pn': 'gamma'})
and `seeds`. Run (setting, seed) trains `base` + overrides with `seed` into `DIR/<name>/seed_<seed>/` through
`vmp_jax.training.run.train_and_evaluate`, so each run checkpoints and resumes like `train.py`; a run that finished
has a `result.json` and is skipped, so a sweep killed halfway continues where it stopped when rerun. A run directory
whose saved config disagrees with what the sweep now asks for is refused rather than silently mixed.

Results (vmp_jax.ablate.summary; rewritten after every run, so a partial sweep has a partial table):
  DIR/results.md, DIR/results.csv    per setting: mean ± std over seeds of the final eval top-1 and mean-class
                                     accuracy, and of the learned VMP coefficients (slope a, shift b; or the
                                     power normalisation's gamma / eta)
  DIR/accuracy.png                   accuracy per setting (mean ± std over seeds)
  DIR/coefficients.png               the learned a and b (and gamma / eta) over training, mean over seeds
--summarise_only rewrites them from the finished runs. A mistake in the config or the flags prints one line
`error: ...` and exits with status 2.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from absl import flags, logging
from ml_collections import config_flags

from vmp_jax import cli
from vmp_jax.ablate.settings import settings_from_config
from vmp_jax.ablate.summary import write_summary
from vmp_jax.ablate.sweep import run_sweep
from vmp_jax.training import distributed, run_dir


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
        table = os.path.join(workdir, run_dir.SUMMARY_FILES["table"])
        with open(table, encoding="utf-8") as f:
            cli.say(f"All {len(settings) * len(seeds)} runs finished: {table}\n{f.read()}")


def main(argv: Sequence[str]) -> int:
    """`python -m vmp_jax.ablate ARGV...` in this process; returns the exit status (2: a user error)."""
    return cli.call(_command, _define_flags, argv, prog="python -m vmp_jax.ablate")


if __name__ == "__main__":
    cli.run(_command, _define_flags)
