"""The inference artifact of a model, written by `vmp_jax.export` (from a run) and `vmp_jax.convert` (from a PyTorch
checkpoint), read by `vmp_jax.predict` and `vmp_jax.visualize`:

    OUT/bundle/, OUT/config.json, OUT/run_info.json   the variables (no optimiser state) and what rebuilds the model
    OUT/model.jax_export                              clips (b, T+1, H, W, 3) uint8 -> logits (b, K) float32

(`vmp_jax.training.run_dir` names the files.) The jax.export artifact is checked against the model right after
it is written: it must reproduce the logits at two batch sizes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vmp_jax.data.transforms import standardize
from vmp_jax.models import factory
from vmp_jax.training import checkpointing, run_dir, trained_run

DEFAULT_PLATFORMS = ("cpu", "cuda", "tpu")
CHECK_BATCH_SIZES = (2, 1)
# The artifact runs the model's own computation; any difference beyond float reassociation means it is wrong.
CHECK_TOLERANCE = 1e-5  # of max(1, |logits|)


def check_platforms(platforms: Sequence[str]) -> None:
    """The artifact is checked on this machine, so its platform must be among those it is lowered for."""
    here = jax.export.default_export_platform()
    if here not in platforms:
        raise ValueError(
            f"platforms={tuple(platforms)} leave out this machine's {here!r}, on which the artifact is checked; add it"
        )


def load_exported(path: str) -> jax.export.Exported:
    """A serialised `jax.export` artifact; `.call(clips)` runs it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: expected the jax.export artifact written by vmp_jax.export")
    with open(path, "rb") as f:
        return jax.export.deserialize(bytearray(f.read()))


def logits_fn(model: Any, variables: dict) -> Callable[[jax.Array], jax.Array]:
    """clips: (B, num_frames, H, W, 3) uint8 -> logits (B, K) float32: eval-mode model, standardising first."""
    return lambda clips: model.apply(variables, standardize(clips), train=False)[0]


def export_logits(
    model: Any,
    variables: dict,
    num_frames: int,
    frame_size: Sequence[int],
    platforms: Sequence[str] = DEFAULT_PLATFORMS,
) -> jax.export.Exported:
    """`jax.export` of `logits_fn` for clips of shape (b, num_frames, H, W, 3) uint8, b symbolic."""
    (batch,) = jax.export.symbolic_shape("b")
    spec = jax.ShapeDtypeStruct((batch, num_frames, *frame_size, 3), jnp.uint8)
    return jax.export.export(jax.jit(logits_fn(model, variables)), platforms=tuple(platforms))(spec)


def check_exported(
    exported: jax.export.Exported,
    model: Any,
    variables: dict,
    batch_sizes: Sequence[int] = CHECK_BATCH_SIZES,
    seed: int = 0,
) -> float:
    """Max |artifact - model| logit difference on random uint8 clips at each batch size, relative to
    max(1, |logits|); raises RuntimeError when it exceeds CHECK_TOLERANCE. Runs on this machine's platform."""
    shape = exported.in_avals[0].shape[1:]
    clips = np.random.default_rng(seed).integers(0, 256, (max(batch_sizes), *shape), dtype=np.uint8)
    expected = np.asarray(jax.jit(logits_fn(model, variables))(clips))
    scale = max(1.0, float(np.abs(expected).max()))
    worst = 0.0
    for b in batch_sizes:
        got = np.asarray(exported.call(clips[:b]))
        if got.shape != expected[:b].shape:
            raise RuntimeError(
                f"exported model gives logits of shape {got.shape} for {b} clips; expected {expected[:b].shape}"
            )
        error = float(np.abs(got - expected[:b]).max()) / scale
        if not error <= CHECK_TOLERANCE:  # also catches NaN
            raise RuntimeError(
                f"exported model does not reproduce the model: batch of {b}, max logit difference "
                f"{error:.2e} of the logit scale {scale:.3g} (tolerance {CHECK_TOLERANCE:g})"
            )
        worst = max(worst, error)
    return worst


def write_bundle(run: trained_run.TrainedRun, out: str) -> str:
    """OUT/bundle (variables only), OUT/config.json and OUT/run_info.json; returns the bundle directory."""
    os.makedirs(out, exist_ok=True)
    run_dir.write_config(out, run.config)
    run_dir.write_run_info(out, run.class_names, run.num_frames, run.frame_size, step=run.step)
    bundle = os.path.abspath(os.path.join(out, run_dir.BUNDLE))
    if os.path.exists(bundle):  # orbax refuses to overwrite; a re-export replaces the old bundle
        shutil.rmtree(bundle)
    checkpointing.save_variables(
        bundle, {"params": run.variables["params"], "batch_stats": run.variables["batch_stats"]}
    )
    return bundle


def load_bundle(out: str) -> trained_run.TrainedRun:
    """The model and variables exported to `out` (by `write_bundle`), for inference without optimiser state.

    `run.model.apply(run.variables, frames, train=False)` -> (logits, variation); frames (B, num_frames, H, W, 3)
    standardised float. `run.workdir` is `out`; `run.step` the training step the variables come from.
    """
    out = os.path.abspath(out)
    config, model, info = trained_run.read_model(out)
    shape = (1, int(info["num_frames"]), *info["frame_size"], 3)
    like = jax.eval_shape(lambda r: factory.init_variables(model, r, shape), jax.random.key(0))
    variables = checkpointing.restore_variables(
        os.path.join(out, run_dir.BUNDLE), {"params": like["params"], "batch_stats": like.get("batch_stats", {})}
    )
    return trained_run.make_trained_run(out, int(info.get("step", -1)), config, model, variables, info)


def write_export(run: trained_run.TrainedRun, out: str, platforms: Sequence[str] = DEFAULT_PLATFORMS):
    """The bundle, its JSON files and the checked jax.export artifact of `run` in `out`.

    `platforms` must include this machine's (`check_platforms`, best called before any slow work). Returns
    ({what: path}, the Exported, its max logit difference from the model relative to the logit scale)."""
    written = {
        "bundle": write_bundle(run, out),
        "config": os.path.join(out, run_dir.CONFIG),
        "run_info": os.path.join(out, run_dir.RUN_INFO),
    }
    exported = export_logits(run.model, run.variables, run.num_frames, run.frame_size, platforms)
    written["jax_export"] = os.path.join(out, run_dir.EXPORTED)
    with open(written["jax_export"], "wb") as f:
        f.write(exported.serialize())
    error = check_exported(load_exported(written["jax_export"]), run.model, run.variables)
    return written, exported, error
