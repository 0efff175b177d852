"""Test-wide JAX set-up: 8 fake CPU devices (for the multi-device tests), set before any JAX computation."""

import os
import tempfile

import jax
import pytest
from videogen import clip_path, videos  # noqa: F401  (the generated-video fixtures, tests/support/videogen.py)

from vmp_jax import cli  # noqa: E402

cli.skip_absent_tpu()  # libtpu installed (requirements-tpu.txt) on this TPU-less machine: JAX stays on the CPU
jax.config.update("jax_num_cpu_devices", 8)

# Tests compile the same small programs many times (each training run, each resume): cache the executables.
jax.config.update("jax_compilation_cache_dir", os.path.join(tempfile.gettempdir(), "vmp_jax_test_jax_cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


@pytest.fixture(scope="module")
def fast_compile():
    """Tiny models and inputs, where compile time dominates: XLA's optimisations off for a module's tests (which
    then compare only programs compiled under the same setting). Modules ask for it with
    `pytestmark = pytest.mark.usefixtures("fast_compile")`."""
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", False)
