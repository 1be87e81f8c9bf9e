"""Metrics: causal deletion/insertion AUC, pointing game, shortcut evidence, classification."""

from medxai.metrics.causal import CausalScores, deletion_insertion
from medxai.metrics.pointing import PointingResult, pointing_game, pointing_hits
from medxai.metrics.shortcut import (
    RegionTests,
    ShortcutEvidence,
    boxes_to_masks,
    region_tests,
    saliency_share,
    shortcut_evidence,
)

__all__ = [
    "CausalScores",
    "PointingResult",
    "RegionTests",
    "ShortcutEvidence",
    "boxes_to_masks",
    "deletion_insertion",
    "pointing_game",
    "pointing_hits",
    "region_tests",
    "saliency_share",
    "shortcut_evidence",
]
