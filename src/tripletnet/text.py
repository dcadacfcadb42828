"""Small helpers for the sentences tripletnet prints and writes."""


def plural(count: int, noun: str) -> str:
    """``1 epoch``, ``2 epochs``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
