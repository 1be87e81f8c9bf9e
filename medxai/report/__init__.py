"""Figures and the HTML audit report."""

from medxai.report.artifacts import AuditArtifacts, CleaningExample, Curves, GalleryItem
from medxai.report.render import write_report

__all__ = ["AuditArtifacts", "CleaningExample", "Curves", "GalleryItem", "write_report"]
