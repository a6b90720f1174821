from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import Cluster


@pytest.fixture
def cluster(redis_server: Any, prefix: str, tmp_path: Path, child_env: dict[str, str]
            ) -> Iterator[Cluster]:
    c = Cluster(redis_server.url, prefix, tmp_path, child_env)
    yield c
    c.stop_all()
