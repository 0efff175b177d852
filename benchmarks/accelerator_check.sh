#!/usr/bin/env bash
# The accelerator check (benchmarks/accelerator_check.py's docstring): one table of what matters on this machine's
# accelerator, in under 8 minutes on one GPU or TPU VM. --quick: small shapes, for a CPU (< 1 minute).
#   benchmarks/accelerator_check.sh [--quick] [--runs 5]
# Needs: the JAX of the machine (a CUDA image's jax[cuda12|13] or jax[tpu], 0.10 or 0.11) plus flax, optax,
# orbax-checkpoint, grain, ml-collections, absl-py, tensorboardX, av, matplotlib, tqdm (and tensorflow-datasets +
# array-record for the input rows, which are skipped without them); nothing is installed here and
# vmp_jax is used from this checkout (PYTHONPATH), so the machine's JAX stays as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec python benchmarks/accelerator_check.py "$@"
