"""One process of a simulated multi-host job for tests/training/test_multihost.py (CPU processes on 127.0.0.1).

    python tests/support/multihost_worker.py eval OUT.npz PROCESS_ID NUM_PROCESSES PORT DEVICES [interleaved]

    python tests/support/multihost_worker.py stop - PROCESS_ID NUM_PROCESSES PORT DEVICES

`stop`: runs `loop.train_loop` with the trainer's SIGTERM handler over 300 steps of one cross-process
collective each, with no log, eval or checkpoint step before the last; prints `step N` after each step and, at
the end, `RESULT {...}` (the step it returned at, the steps it saved, its stop messages).

`eval`: evaluates a tiny randomly initialised model on the procedural eval split over a 1-D mesh (with
`interleaved`, the mesh's device order alternates between the processes, as `jax.make_mesh` may order a TPU
torus) and, on process 0, saves the per-video probabilities (video ids, probabilities, labels) to OUT.npz.
"""

import sys

import jax
import numpy as np
from tiny_run import tiny_config

from vmp_jax.data import multiview
from vmp_jax.training import evaluation, loop, steps
from vmp_jax.training.mesh import AXIS


def interleaved_devices():
    """Devices ordered p0d0, p1d0, ..., p0d1, p1d1, ...: no process's devices are adjacent."""
    by_process = [[d for d in jax.devices() if d.process_index == p] for p in range(jax.process_count())]
    return [d for group in zip(*by_process) for d in group]


def run_eval(out, interleaved):
    from vmp_jax.data import builders
    from vmp_jax.models import factory

    config = tiny_config(**{"data.procedural.num_eval": 24})
    devices = interleaved_devices() if interleaved else jax.devices()
    # The trainer's (hosts, data) mesh; interleaved, each of its rows mixes the processes' devices.
    mesh = jax.sharding.Mesh(np.array(devices).reshape(jax.process_count(), -1), AXIS)
    data = builders.make_datasets(
        config.data,
        num_frames=config.num_frames + 1,
        global_batch_size=config.batch_size,
        eval_batch_size=config.eval_batch_size,
        seed=0,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    model = factory.build_model(config.model, data.num_classes, bn_axis_name=AXIS)
    shape = (1, config.num_frames + 1, 32, 32, 3)
    variables = factory.init_variables(model, jax.random.key(3), shape)
    state = steps.TrainState(
        step=np.int32(0), params=variables["params"], batch_stats=variables.get("batch_stats", {}), opt_state=()
    )
    state = jax.device_put(state, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
    accumulators = []

    class Recorded(multiview.MultiViewAccumulator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            accumulators.append(self)

    multiview.MultiViewAccumulator = Recorded
    evaluation.evaluate(
        steps.make_eval_step(mesh, model), state, data.eval, mesh, data.num_classes, data.eval_num_views
    )
    if jax.process_index() == 0:
        ids, probs, labels = accumulators[0].video_probabilities()
        np.savez(out, ids=ids, probs=probs, labels=labels)


def run_stop():
    import json
    import signal
    import time

    import loop_fakes  # beside this script: the first entry of sys.path
    from jax.experimental import multihost_utils

    stop = loop.StopFlag()
    signal.signal(signal.SIGTERM, stop)  # after jax.distributed.initialize, as train.py installs it
    saved, messages = [], []

    def train_step(state, batch):
        multihost_utils.process_allgather(np.int32(state))  # the processes step together, as with a real step
        time.sleep(0.01)
        print(f"step {state + 1}", flush=True)
        return state + 1, {"loss": np.float32(1.0), "param_norm": np.float32(1.0)}

    final = loop.train_loop(
        0,
        0,
        loop.Cadence(total_steps=300, log_every=1000, eval_every=0, checkpoint_every=1000),
        batches=iter(range(1000)),
        train_step=train_step,
        evaluate=lambda s, final: {"eval": {}},
        save=lambda step, s, m=None: saved.append(step),
        checkpoints=loop_fakes.Checkpoints(saved, directory="-"),
        writer=loop_fakes.Writer(messages),
        stop=stop,
        batch_size=1,
    )
    print("RESULT " + json.dumps({"final": final, "saved": saved, "messages": messages}), flush=True)


def main(argv):
    what, out, process_id, num_processes, port, devices = argv[1:7]
    jax.config.update("jax_num_cpu_devices", int(devices))
    if int(num_processes) > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(f"127.0.0.1:{port}", int(num_processes), int(process_id))
    if what == "eval":
        run_eval(out, interleaved="interleaved" in argv[7:])
    elif what == "stop":
        run_stop()
    else:
        raise ValueError(f"unknown worker task {what!r}")


if __name__ == "__main__":
    main(sys.argv)
