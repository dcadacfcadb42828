"""Where ``tripletnet evaluate RUN_DIR`` spends its time: the wall seconds of each stage of
``evaluate_run`` (imports, embedding, search, probe, figures, ...), measured by wrapping the
stage functions where the evaluation modules call them. Stages that run in threads overlap, so
their seconds add up to more than the whole. Works on any version of the code that has these
functions (a stage the code lacks is left out), so that two commits can be compared:

    TRIPLETNET_CACHE_DIR=CACHE PYTHONPATH=src python bench/evaluation_stages.py RUN_DIR
    TRIPLETNET_CACHE_DIR=CACHE2 PYTHONPATH=/tmp/old/src python bench/evaluation_stages.py RUN_DIR
"""

from __future__ import annotations

import argparse
import functools
import importlib
import time
from collections import defaultdict
from typing import Any

STAGES = {  # module -> the functions timed where that module calls them
    "tripletnet.evaluation.report": [
        "load_run",
        "load_data",
        "embed_split",
        "cached_embeddings",
        "embedding_projections",
        "cached_projections",
        "draw_views",
        "_measure",
        "_raw_row",
        "triplet_error",
        "write_evaluation",
    ],
    "tripletnet.evaluation.evaluate": [
        "retrieve",
        "nearest_centroid_correct",
        "linear_probe_correct",
        "pair_distances",
        "clustering_scores",
        "threshold_consistency",
        "bootstrap_ci",
        "bootstrap_cis",
    ],
    "tripletnet.evaluation.report_files": [
        "embedding_projections",
        "plot_embedding_2d",
        "plot_projection",
        "plot_roc",
        "plot_distance_histograms",
        "plot_retrieval_grid",
        "plot_training_curves",
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    args = parser.parse_args()
    start = time.perf_counter()
    try:  # as the command does (commits from issue 15's fourth round on), before torch loads
        from tripletnet.cli.memory import keep_freed_memory

        keep_freed_memory()
    except ImportError:
        pass
    modules = {name: importlib.import_module(name) for name in STAGES}
    imported = time.perf_counter() - start
    seconds: dict[str, float] = defaultdict(float)
    for name, functions in STAGES.items():
        for function in functions:
            if hasattr(modules[name], function):
                setattr(modules[name], function, _timed(getattr(modules[name], function), seconds))
    began = time.perf_counter()
    modules["tripletnet.evaluation.report"].evaluate_run(args.run_dir)
    total = time.perf_counter() - began
    print(f"imports {imported:.2f} s, evaluate_run {total:.2f} s, whole {imported + total:.2f} s")
    for stage, spent in sorted(seconds.items(), key=lambda item: -item[1]):
        print(f"  {stage:28s} {spent:6.2f} s")


def _timed(function: Any, seconds: dict[str, float]) -> Any:
    @functools.wraps(function)
    def timed(*args: Any, **options: Any) -> Any:
        began = time.perf_counter()
        try:
            return function(*args, **options)
        finally:
            seconds[function.__name__] += time.perf_counter() - began

    return timed


if __name__ == "__main__":
    main()
