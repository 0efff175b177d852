"""Optimisers and learning-rate schedules (optax) for VMP training.

SGD (momentum, Nesterov, coupled L2 weight decay as in PyTorch's SGD) or AdamW (decoupled decay); schedules
'cosine' (linear warm-up then cosine decay) and 'steps' (PySlowFast's `steps_with_relative_lrs`: the rate is
base_lr * relative[i] from boundary[i] on, plus optional warm-up). Which parameters are decayed is a mask over
the parameter tree: kernels always; BatchNorm scales and biases only if asked; VMP's m, n (or its PN's parameter;
module 'vmp') only if asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optax
from flax import traverse_util

from vmp_jax import cli

SCHEDULES = ("cosine", "steps", "constant")
OPTIMIZERS = ("sgd", "adamw")
VMP_PARAM_NAMES = ("m", "n", "log_gamma", "log_eta")  # every PN's parameters (motion_prompt.PN_PARAMS)


def validate_config(optimizer: Any, schedule: Any) -> None:
    """Raises cli.ConfigError naming the first invalid `optimizer.*` or `schedule.*` key."""
    if optimizer.name not in OPTIMIZERS:
        raise cli.config_error("optimizer.name", optimizer.name, f"one of {OPTIMIZERS}")
    if schedule.name not in SCHEDULES:
        raise cli.config_error("schedule.name", schedule.name, f"one of {SCHEDULES}")
    if schedule.base_lr <= 0:
        raise cli.config_error("schedule.base_lr", schedule.base_lr, "> 0")
    if schedule.name == "steps" and len(schedule.relative_rates) != len(schedule.boundaries_epochs) + 1:
        raise cli.config_error(
            "schedule.relative_rates",
            tuple(schedule.relative_rates),
            f"one more rate than schedule.boundaries_epochs={tuple(schedule.boundaries_epochs)}",
        )


def learning_rate_schedule(
    name: str,
    base_lr: float,
    total_steps: int,
    warmup_steps: int = 0,
    boundaries: Sequence[int] = (),
    relative_rates: Sequence[float] = (1.0,),
    warmup_init: float = 0.0,
) -> optax.Schedule:
    """The learning rate as a function of the step (an optax schedule)."""
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}")
    if name == "cosine":
        main = optax.cosine_decay_schedule(base_lr, max(total_steps - warmup_steps, 1))
    elif name == "constant":
        main = optax.constant_schedule(base_lr)
    else:
        if len(relative_rates) != len(boundaries) + 1:
            raise ValueError(
                f"steps schedule needs one more relative rate than boundaries, got rates "
                f"{tuple(relative_rates)} and boundaries {tuple(boundaries)}"
            )
        # Boundaries count from step 0 of the whole run; the warm-up (if any) overlaps the first interval.
        rates = [base_lr * r for r in relative_rates]
        shifted = [max(b - warmup_steps, 0) for b in boundaries]
        main = optax.join_schedules([optax.constant_schedule(r) for r in rates], shifted)
    if warmup_steps <= 0:
        return main
    warm = optax.linear_schedule(
        warmup_init * base_lr, base_lr * (relative_rates[0] if name == "steps" else 1.0), warmup_steps
    )
    return optax.join_schedules([warm, main], [warmup_steps])


def decay_mask(params: Any, decay_norm_and_bias: bool = False, decay_vmp: bool = False) -> Any:
    """A tree of booleans like params: True where weight decay applies."""
    flat = traverse_util.flatten_dict(params)

    def decayed(path: tuple[str, ...]) -> bool:
        if path[-1] in VMP_PARAM_NAMES and (len(path) == 1 or path[-2] == "vmp"):
            return decay_vmp
        return path[-1] == "kernel" or decay_norm_and_bias

    return traverse_util.unflatten_dict({path: decayed(path) for path in flat})


def make_optimizer(
    name: str,
    learning_rate: optax.Schedule,
    params: Any,
    *,
    momentum: float = 0.9,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    decay_norm_and_bias: bool = False,
    decay_vmp: bool = False,
    clip_grad_norm: float | None = None,
    b1: float = 0.9,
    b2: float = 0.999,
) -> optax.GradientTransformation:
    """The optax transformation: optional global-norm clipping, then SGD (+ L2) or AdamW."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
    mask = decay_mask(params, decay_norm_and_bias, decay_vmp)
    parts = []
    if clip_grad_norm:
        parts.append(optax.clip_by_global_norm(clip_grad_norm))
    if name == "sgd":
        if weight_decay:
            parts.append(optax.add_decayed_weights(weight_decay, mask))
        parts.append(optax.sgd(learning_rate, momentum=momentum or None, nesterov=nesterov))
    else:
        parts.append(optax.adamw(learning_rate, b1=b1, b2=b2, weight_decay=weight_decay, mask=mask))
    return optax.chain(*parts)
