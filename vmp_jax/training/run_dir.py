"""The layout of the directories vmp_jax writes, in one place: a run's workdir, an export, an ablation sweep.

    WORKDIR/                         train.py
      config.json                    the resolved config (CONFIG)
      run_info.json                  class names, the model's input shape, total steps, device count (RUN_INFO)
      checkpoints/<step>/            orbax steps with checksums.json; damaged/ holds steps moved aside (CHECKPOINTS)
      metrics.jsonl, tensorboard/    the metrics (METRICS_FILE, TENSORBOARD_DIR)
      profile/                       jax.profiler traces, when asked for (PROFILE_DIR)
    OUT/                             python -m vmp_jax.export / vmp_jax.convert
      bundle/                        params + batch_stats only (BUNDLE)
      config.json, run_info.json     as in a workdir; run_info holds the exported step
      model.jax_export               the serialised jax.export of the logits (EXPORTED)
      pytorch_state_dict.pt          the PyTorch state dict, where the backbone has a converter (STATE_DICT)
    SWEEP/                           python -m vmp_jax.ablate
      sweep.json                     settings, seeds and base config (SWEEP_FILE)
      <setting>/seed_<seed>/         a workdir, plus result.json once finished (RESULT)
      results.md, results.csv, accuracy.png, coefficients.png   the summary (SUMMARY_FILES)

JSON files here are replaced atomically (`write_json`).
"""

from __future__ import annotations

import json
import os

import ml_collections

CONFIG = "config.json"
RUN_INFO = "run_info.json"
CHECKPOINTS = "checkpoints"
METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
PROFILE_DIR = "profile"

BUNDLE = "bundle"
EXPORTED = "model.jax_export"
STATE_DICT = "pytorch_state_dict.pt"

SWEEP_FILE = "sweep.json"
RESULT = "result.json"
SUMMARY_FILES = {
    "table": "results.md",
    "csv": "results.csv",
    "accuracy": "accuracy.png",
    "coefficients": "coefficients.png",
}


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(workdir, CHECKPOINTS)


def is_export(directory: str) -> bool:
    """Whether `directory` is an export (a bundle and no checkpoints) rather than a training run."""
    return os.path.isdir(os.path.join(directory, BUNDLE)) and not os.path.isdir(checkpoint_dir(directory))


def write_json(path: str, content: dict | str) -> None:
    """Replaces `path` atomically (a killed writer leaves the old file or the new one, never half of one)."""
    text = content if isinstance(content, str) else json.dumps(content, indent=2)
    with open(f"{path}.tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(f"{path}.tmp", path)


def read_json(path: str) -> dict:
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: is {os.path.dirname(path)} a train.py workdir (or a vmp_jax.export output)?"
        )
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_config(directory: str, config: ml_collections.ConfigDict) -> None:
    write_json(os.path.join(directory, CONFIG), config.to_json_best_effort(indent=2, sort_keys=True))


def load_config(directory: str) -> ml_collections.ConfigDict:
    """The resolved config a run was trained with (`DIR/config.json`)."""
    return ml_collections.ConfigDict(read_json(os.path.join(directory, CONFIG)))


def write_run_info(
    directory: str,
    class_names: list[str],
    num_frames: int,
    frame_size: tuple[int, int],
    total_steps: int | None = None,
    step: int | None = None,
    num_devices: int | None = None,
) -> None:
    """What a reader of the run needs beyond the config: the class names and the model's input shape; for a
    training run its length in steps and device count, for an exported bundle the step its variables come from."""
    info = {"class_names": list(class_names), "num_frames": int(num_frames), "frame_size": list(frame_size)}
    for key, value in (("total_steps", total_steps), ("step", step), ("num_devices", num_devices)):
        if value is not None:
            info[key] = int(value)
    write_json(os.path.join(directory, RUN_INFO), info)


def read_run_info(directory: str) -> dict:
    """DIR/run_info.json: class_names, num_frames, frame_size; total_steps (a run) or step (an export)."""
    return read_json(os.path.join(directory, RUN_INFO))


def previous_run(workdir: str) -> tuple[dict, dict] | None:
    """(saved config, saved run info) of the run in `workdir`, None when it saved no config."""
    path = os.path.join(workdir, CONFIG)
    if not os.path.isfile(path):
        return None
    info_path = os.path.join(workdir, RUN_INFO)
    return read_json(path), (read_json(info_path) if os.path.isfile(info_path) else {})


def sweep_run_dir(sweep_dir: str, setting_name: str, seed: int) -> str:
    return os.path.join(sweep_dir, setting_name, f"seed_{seed}")
