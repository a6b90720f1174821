"""Nodeworks node charts (`.nc`): import as native workflows, export back.

`convert.convert_chart` turns a chart into a native workflow document, `export.export_chart`
turns a native document back into a chart, `library` knows the node types (built-in and
plugins). Importing this package imports nothing else, so the worker can use `wire`.
"""
