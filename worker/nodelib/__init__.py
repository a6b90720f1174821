"""Implementations of Nodeworks node types, run on the worker (see broker/nodeworks).

`run.run_node` is the callable of every converted Python node; `lib_math`, `lib_types`,
`lib_numpy` and `lib_matplotlib` hold the built-in libraries, each as a `NODES` mapping
`{(library, name): implementation}` like a plugin's. An implementation takes the node's
values `{terminal: value}` (plus `file=` when it writes one) and returns `{output: value}`.
numpy and matplotlib are imported only when a node of theirs runs.
"""
