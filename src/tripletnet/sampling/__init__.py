"""Which samples go together: Hoffer's random triplets, P x K class-balanced batches."""

from .pk import PKSampler
from .triplets import RandomTripletSampler, fixed_test_triplets

__all__ = ["PKSampler", "RandomTripletSampler", "fixed_test_triplets"]
