"""What the motion prompt layer does to a video, drawn (`python -m vmp_jax.visualize`): the numbers (panels),
the figure (figure) and the file it is written to (render)."""
