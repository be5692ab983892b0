"""The care-pathway warehouse: dbt builds it (:mod:`.build`); its marts are published
(:mod:`.publish`).
"""

from joinedup.warehouse.build import WarehouseError, build_warehouse, generate_docs
from joinedup.warehouse.publish import (
    analytics_path,
    candidate_path,
    discard_candidate,
    publish_analytics,
    publish_candidate,
    stage_analytics,
)

__all__ = [
    "WarehouseError",
    "analytics_path",
    "build_warehouse",
    "candidate_path",
    "discard_candidate",
    "generate_docs",
    "publish_analytics",
    "publish_candidate",
    "stage_analytics",
]
