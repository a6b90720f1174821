"""dagbroker worker: reads tasks from Redis streams, runs them, reports completions.

Importing this package has no side effects. Entry points: `worker.main.main` (CLI) and
`worker.main.run_worker` (embed in an existing event loop).
"""
