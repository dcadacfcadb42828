"""How long the command line takes to answer: `tripletnet --help`, `tripletnet train --help` and
a shell-completion call (what each TAB runs), against `python -c pass` as the bare interpreter.

Each is a fresh process (cold as far as Python is concerned: no module is loaded; the operating
system's file cache is warm after the first of the repeats, which are shown as min and median).

    python bench/cli_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": ([sys.executable, "-c", "pass"], {}),
    "tripletnet --help": (["tripletnet", "--help"], {}),
    "tripletnet train --help": (["tripletnet", "train", "--help"], {}),
    "completion (tripletnet <TAB>)": (
        ["tripletnet"],
        {"_TRIPLETNET_COMPLETE": "bash_complete", "COMP_WORDS": "tripletnet ", "COMP_CWORD": "1"},
    ),
}


def seconds(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    script = shutil.which("tripletnet")
    if script is None:
        sys.exit("the tripletnet script is not on PATH: pip install -e . (in this environment)")
    print(f"{'command':<32} {'min s':>7} {'median s':>9}   ({repeats} runs, {os.cpu_count()} CPUs)")
    for name, (argv, env) in COMMANDS.items():
        argv = [script, *argv[1:]] if argv[0] == "tripletnet" else argv
        times = [seconds(argv, env) for _ in range(repeats)]
        print(f"{name:<32} {min(times):>7.2f} {statistics.median(times):>9.2f}")


if __name__ == "__main__":
    main()
