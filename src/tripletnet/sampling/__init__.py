"""Which samples go together: Hoffer's random triplets and pairs."""

from .triplets import RandomTripletSampler, fixed_test_triplets, random_pairs

__all__ = ["RandomTripletSampler", "fixed_test_triplets", "random_pairs"]
