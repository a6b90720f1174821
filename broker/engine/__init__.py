"""The Redis side of the broker: the only package that changes run and task state."""
