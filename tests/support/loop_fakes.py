"""Stand-ins for the checkpoints and the metric writer that `vmp_jax.training.loop.train_loop` is given, recording
what the loop asks of them (shared by tests/training/test_training_stop.py and the multi-process worker
tests/support/multihost_worker.py)."""


class Checkpoints:
    """`saved`: the steps saved so far (the list the test's `save` appends to); the latest is the last one."""

    def __init__(self, saved: list, directory: str = "ckpt", step_of=lambda entry: entry):
        self.saved, self.directory, self.step_of = saved, directory, step_of

    def latest_step(self):
        return self.step_of(self.saved[-1]) if self.saved else None

    def wait(self):
        pass


class Writer:
    """Keeps the messages (and, with `records`, the (step, split) of each record written)."""

    def __init__(self, messages: list | None = None, records: list | None = None):
        self.messages, self.records = messages, records

    def advance(self, step):
        pass

    def write(self, step, split, metrics):
        if self.records is not None:
            self.records.append((step, split))

    def message(self, text):
        if self.messages is not None:
            self.messages.append(text)
