"""Trains VMP + a video backbone on every device of this machine or cluster.

    python train.py                                        # the embedded default -> runs/default/
    python train.py --config configs/NAME.py --workdir DIR --config.key=value ...

A mistake in the config or the flags stops the run with one line `error: ...` and exit status 2.
Rerunning the same command resumes from the workdir's latest checkpoint. On a cluster, JAX's distributed
runtime starts automatically where it detects one (SLURM, Open MPI, TPU pods, ...), or from the flags
--coordinator_address, --num_processes and --process_id.
"""

import os

from absl import flags, logging
from ml_collections import config_flags

from vmp_jax import cli


def define_flags(flag_values: flags.FlagValues, argv=None) -> None:
    """train.py's flags, on `flag_values`; config overrides are read from `argv` (None: sys.argv)."""
    config_flags.DEFINE_config_file(
        "config",
        "configs/default.py",
        "Training config (ml_collections).",
        lock_config=True,
        flag_values=flag_values,
        sys_argv=argv,
    )
    define = dict(flag_values=flag_values)
    flags.DEFINE_string("workdir", None, "Where checkpoints and metrics go (default: runs/<config name>).", **define)
    flags.DEFINE_string("coordinator_address", None, "host:port of process 0, for multi-process runs.", **define)
    flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process runs).", **define)
    flags.DEFINE_integer("process_id", None, "This process's index (multi-process runs).", **define)
    flags.DEFINE_string(
        "cpu_collectives", None, "CPU collectives implementation for multi-process CPU runs ('gloo').", **define
    )
    flags.DEFINE_integer(
        "cpu_devices",
        -1,
        "On the CPU backend, JAX devices per process (one XLA:CPU program uses about one core, so "
        "data parallelism over one device per core is faster). -1: the largest count <= the cores that divides the "
        "batch sizes; 0: JAX's default. Ignored when JAX_NUM_CPU_DEVICES is set.",
        **define,
    )


def main(argv, flag_values):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments: {argv[1:]}")
    import jax

    # After flag parsing: importing JAX code reads no flags early.
    from vmp_jax.training import distributed, run_dir
    from vmp_jax.training.run import train_and_evaluate

    config = flag_values.config
    if config.compilation_cache_dir:  # before anything compiles
        jax.config.update(
            "jax_compilation_cache_dir", os.path.abspath(os.path.expanduser(config.compilation_cache_dir))
        )
    note = distributed.set_cpu_devices(flag_values.cpu_devices, (config.batch_size, config.eval_batch_size))
    distributed.initialize(
        flag_values.coordinator_address, flag_values.num_processes, flag_values.process_id, flag_values.cpu_collectives
    )
    workdir = cli.output_dir(
        flag_values.workdir
        or os.path.join("runs", os.path.splitext(os.path.basename(flag_values["config"].config_filename))[0]),
        "workdir",
    )
    if not flag_values["verbosity"].present:  # orbax and grain log every step at INFO; --verbosity=0 shows it
        logging.set_verbosity(logging.WARNING)
    cli.say(
        f"Training {flag_values['config'].config_filename} on {jax.device_count()} {jax.default_backend()} "
        f"device(s) into {os.path.abspath(workdir)}"
    )
    if note:
        cli.say(note)
    state = train_and_evaluate(config, workdir)
    # Process 0 wrote the run's info; on a cluster the other hosts may not see the workdir.
    if jax.process_index() == 0 and int(jax.device_get(state.step)) >= run_dir.read_run_info(workdir)["total_steps"]:
        cli.say(next_steps(os.path.abspath(workdir)))


def next_steps(workdir: str) -> str:
    """What to do with a run once it has trained: the tools' command lines."""
    return (
        f"Next: python -m vmp_jax.visualize VIDEO --workdir {workdir} --out motion.png  (what the motion prompt sees)\n"
        f"      python -m vmp_jax.export --workdir {workdir} --out {workdir}_export   (then python -m vmp_jax.predict "
        f"--export {workdir}_export VIDEO)"
    )


if __name__ == "__main__":
    cli.run(main, define_flags)
