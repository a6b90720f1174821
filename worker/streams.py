"""Decoding stream replies (RESP2 list or RESP3 dict form) and stream entries. Pure."""

from __future__ import annotations

import logging
from typing import Any

from broker.wire import TaskMessage

logger = logging.getLogger(__name__)

Entry = tuple[str, str, dict[str, str]]  # (stream, entry id, fields)


def flatten_reply(reply: Any) -> list[Entry]:
    """XREAD/XREADGROUP reply → [(stream, id, fields)] in reply order."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    out: list[Entry] = []
    for stream, entries in pairs:
        if isinstance(entries, list) and len(entries) == 1 and isinstance(entries[0], list):
            entries = entries[0]  # RESP3 wraps each stream's entries once more
        for msg_id, fields in entries:
            out.append((stream, msg_id, fields or {}))
    return out


def decode_entries(entries: list[Entry]) -> tuple[list[TaskMessage], list[Entry]]:
    """→ (decoded messages, malformed entries)."""
    good: list[TaskMessage] = []
    bad: list[Entry] = []
    for stream, msg_id, fields in entries:
        try:
            good.append(TaskMessage.from_fields(stream, msg_id, fields))
        except Exception as e:  # malformed entry: never crash the consumer over one
            logger.error("cannot decode %s %s (%s: %s); dropping it", stream, msg_id,
                         type(e).__name__, e)
            bad.append((stream, msg_id, fields))
    return good, bad
