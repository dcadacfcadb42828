"""Robustness: common corruptions (ImageNet-C, MNIST-C), perturbation stability (ImageNet-P),
adversarial examples (FGSM, PGD) against embeddings, and the ``tripletnet robustness`` report.

Import the modules themselves (``robustness.corruptions``, ``robustness.attacks``, ...): this
package imports nothing, so that training can use the corruptions and attacks without the
evaluation layer.
"""
