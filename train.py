"""Trains VMP + a video backbone on every device of this machine or cluster.

    python train.py                                        # the embedded default -> runs/default/
    python train.py --config configs/NAME.py --workdir DIR --config.key=value ...

Rerunning the same command resumes from the workdir's latest checkpoint. On a cluster, JAX's distributed
runtime starts automatically where it detects one (SLURM, Open MPI, TPU pods, ...), or from the flags
--coordinator_address, --num_processes and --process_id.
"""

import os

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "configs/default.py", "Training config (ml_collections).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints and metrics go (default: runs/<config name>).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0, for multi-process runs.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process runs).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (multi-process runs).")
_CPU_COLLECTIVES = flags.DEFINE_string("cpu_collectives", None,
                                       "CPU collectives implementation for multi-process CPU runs ('gloo').")
_CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices", -1, "On the CPU backend, JAX devices per process (one XLA:CPU program uses about one core, so "
    "data parallelism over one device per core is faster). -1: the largest count <= the cores that divides the "
    "batch sizes; 0: JAX's default. Ignored when JAX_NUM_CPU_DEVICES is set.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    import jax

    from vmp_jax import distributed, train_lib  # after flag parsing: importing JAX code reads no flags early

    config = _CONFIG.value
    distributed.set_cpu_devices(_CPU_DEVICES.value, (config.batch_size, config.eval_batch_size))
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value, _CPU_COLLECTIVES.value)
    workdir = _WORKDIR.value or os.path.join("runs", os.path.splitext(os.path.basename(
        flags.FLAGS["config"].config_filename))[0])
    if not flags.FLAGS["verbosity"].present:  # orbax and grain log every step at INFO; --verbosity=0 shows it
        logging.set_verbosity(logging.WARNING)
    if jax.process_index() == 0:
        print(f"Training {flags.FLAGS['config'].config_filename} on {jax.device_count()} {jax.default_backend()} "
              f"device(s) into {os.path.abspath(workdir)}", flush=True)
    train_lib.train_and_evaluate(config, workdir)


if __name__ == "__main__":
    app.run(main)
