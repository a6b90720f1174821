"""Durable history in SQLite: users, tokens, audit trail (and, later, archived runs)."""
