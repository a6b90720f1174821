"""Resource class of a task: the documented rules (docs/workflow-format.md#resource-classes).

1. `resources.class` if given;
2. `gpu` if the node asks for one or more GPUs;
3. `bigmem` if it asks for 64 GiB of memory or more;
4. `cpu` otherwise.
"""

from __future__ import annotations

BIGMEM_MB = 64 * 1024


def resource_class(explicit: str | None, gpus: int, memory_mb: int | None) -> str:
    """Apply the rules above."""
    if explicit:
        return explicit
    if gpus > 0:
        return "gpu"
    if memory_mb is not None and memory_mb >= BIGMEM_MB:
        return "bigmem"
    return "cpu"
