"""Whole workflows built on the medxai library (COVIDx audit, ImageNet and COCO evaluation).

Imports go downward only: pipelines use `medxai` and `data_cleaning`, never the reverse.
"""
