"""Classifiers: COVID-Net rebuilt from its paper, and the backbones COVIDx users fine-tune."""
