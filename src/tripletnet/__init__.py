"""tripletnet: deep metric learning with the Triplet network (Hoffer & Ailon 2015) and friends."""

__version__ = "0.1.0"
