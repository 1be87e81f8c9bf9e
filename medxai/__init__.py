"""medxai: find out why a medical image classifier decides what it decides."""

__version__ = "0.1.0"
