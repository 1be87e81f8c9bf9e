"""Figures and the HTML audit report."""
