"""Training VMP + a backbone: `run.train_and_evaluate` (what train.py calls) builds the run and drives `loop`,
which calls the pure `steps` on the `mesh`, saves with `checkpointing` and logs with `metric_writers`.
`validation` and `resume` check the config first; `run_dir` owns the names of the files a run writes;
`trained_run` reads a run back. `optim`, `distributed` and `profiling` are what their names say."""
