"""Haven: a self-hosted container registry."""

__version__ = "0.1.0"
