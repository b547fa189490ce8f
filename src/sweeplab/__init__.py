"""sweeplab: Hydra + PyTorch Lightning experiment framework."""

__version__ = "0.1.0"
