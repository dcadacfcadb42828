"""The geometries an embedding is compared in, by name (no torch: the CLI and the search
service import it). ``cosine``: the net ends in L2 normalisation and neighbours are ordered by
cosine similarity; ``euclidean``: by the L2 distance."""

METRICS = ("euclidean", "cosine")
