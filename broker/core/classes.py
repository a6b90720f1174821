"""Resource class of a task: the documented rules (docs/workflow-format.md#resource-classes).

1. `resources.class` if given;
2. the executor's own class for remote executors: `slurm`, `ssh`, `aws` (`aws_batch`), so that
   only runners that have that executor (and the cluster/credentials behind it) take them;
3. `gpu` if the node asks for one or more GPUs;
4. `bigmem` if it asks for 64 GiB of memory or more;
5. `cpu` otherwise.
"""

from __future__ import annotations

BIGMEM_MB = 64 * 1024
EXECUTOR_CLASSES = {"slurm": "slurm", "ssh": "ssh", "aws_batch": "aws"}


def resource_class(
    explicit: str | None, gpus: int, memory_mb: int | None, executor: str = "shell"
) -> str:
    """Apply the rules above."""
    if explicit:
        return explicit
    if executor in EXECUTOR_CLASSES:
        return EXECUTOR_CLASSES[executor]
    if gpus > 0:
        return "gpu"
    if memory_mb is not None and memory_mb >= BIGMEM_MB:
        return "bigmem"
    return "cpu"
