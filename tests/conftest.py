"""Test-wide JAX set-up: 8 fake CPU devices (for the multi-device tests), set before any JAX computation."""

import os
import tempfile

import jax

jax.config.update("jax_num_cpu_devices", 8)

# Tests compile the same small programs many times (each training run, each resume): cache the executables.
jax.config.update("jax_compilation_cache_dir", os.path.join(tempfile.gettempdir(), "vmp_jax_test_jax_cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
