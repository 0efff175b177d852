"""Test-wide JAX set-up: 8 fake CPU devices (for the multi-device tests), set before any JAX computation."""
import jax

jax.config.update("jax_num_cpu_devices", 8)
