"""Nodeworks library `matplotlib`: Plot, drawn with the Agg backend into a PNG file.

The file is written into the task's working directory under the name the converter chose
(`<node id>.png`, also the node's declared output); the result is `{"file": name}`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Values = Mapping[str, Any]


def series(value: Any) -> list[list[float]]:
    """A terminal's data as a list of series: one flat list is one series."""
    if value is None or value == []:
        return []
    if isinstance(value, list) and all(isinstance(v, list) for v in value):
        return value
    return [value if isinstance(value, list) else [value]]


def _x_for(xs: list[list[float]], i: int, n: int) -> list[float]:
    if len(xs) > i:
        return xs[i]
    if len(xs) == 1:
        return xs[0]
    return list(range(n))


def plot(values: Values, *, file: str) -> dict[str, Any]:
    """Each y series against its x (or the only x, or its index); saved as `file`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xs, ys = series(values.get("x")), series(values.get("y"))
    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, y in enumerate(ys):
        x = _x_for(xs, i, len(y))
        if len(x) != len(y):
            raise ValueError(f"series {i}: {len(x)} x values but {len(y)} y values")
        ax.plot(x, y)
    fig.savefig(file, format="png")
    return {"file": file}


NODES: dict[tuple[str, str], Callable[..., dict[str, Any]]] = {
    ("matplotlib", "Plot"): plot,
}
