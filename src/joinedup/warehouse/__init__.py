"""The care-pathway warehouse: dbt builds it (:mod:`.build`); its marts are published
(:mod:`.publish`) as two files, each for its audience.
"""

from joinedup.warehouse.build import WarehouseError, build_warehouse, generate_docs
from joinedup.warehouse.publish import (
    analysts_gid,
    analytics_path,
    candidate_path,
    candidate_paths,
    commissioning_candidate_path,
    commissioning_path,
    discard_candidate,
    publication_paths,
    publish_analytics,
    publish_candidate,
    stage_analytics,
)

__all__ = [
    "WarehouseError",
    "analysts_gid",
    "analytics_path",
    "build_warehouse",
    "candidate_path",
    "candidate_paths",
    "commissioning_candidate_path",
    "commissioning_path",
    "discard_candidate",
    "generate_docs",
    "publication_paths",
    "publish_analytics",
    "publish_candidate",
    "stage_analytics",
]
