"""Artifact storage: content-addressed stores (local directory, S3) and the per-run index.

Stdlib + msgspec + redis only at import; aiobotocore is imported when an S3 store is used.
"""

from __future__ import annotations

from broker.artifacts.base import (
    ArtifactError,
    ArtifactNotFound,
    ArtifactStore,
    InvalidKey,
    ObjectInfo,
    check_sha,
    hash_file,
)
from broker.artifacts.index import (
    ArtifactRecord,
    find_artifacts,
    get_artifact,
    list_artifacts,
    pick_artifacts,
    record_artifacts,
)
from broker.artifacts.local import LocalStore
from broker.artifacts.urls import store_from_url

__all__ = [
    "ArtifactError", "ArtifactNotFound", "ArtifactRecord", "ArtifactStore", "InvalidKey",
    "LocalStore", "ObjectInfo", "check_sha", "find_artifacts", "get_artifact", "hash_file",
    "list_artifacts", "pick_artifacts", "record_artifacts", "store_from_url",
]
