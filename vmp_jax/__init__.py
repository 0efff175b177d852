"""vmp_jax: Video Motion Prompts (Chen, Wang, Koniusz, Gedeon, ACML 2024) in JAX/Flax."""
