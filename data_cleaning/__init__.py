"""Burned-in text detection and Telea inpainting into a cleaned COVIDx copy (issue 5)."""
