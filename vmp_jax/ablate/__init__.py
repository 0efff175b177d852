"""Ablation sweeps (`python -m vmp_jax.ablate`): settings, the sweep that trains them, and its summary."""
