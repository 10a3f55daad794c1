"""lltax: map the phase diagram of neural-network loss landscapes (Yang et al. 2021)."""

__version__ = "0.1.0"
