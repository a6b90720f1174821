"""Pure logic: no I/O, no asyncio. Importable by the worker."""
