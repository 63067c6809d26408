#!/usr/bin/env python3
"""Memory soak of detector_node: RSS over a long 30 Hz run (not a CI test).

    scripts/in_env.sh python benchmarks/memory_soak.py [--duration 600] [--interval 10]

Same as ``python -m benchmarks.benchmark soak``: a test publisher process sends real frames at
--rate Hz to an installed detector_node process for --duration seconds (default 10 minutes);
the node's resident memory is sampled every --interval seconds and its growth after the warm-up
is printed.
"""
from pathlib import Path
import sys

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import benchmark  # noqa: E402


def parse_args(argv=None):
    """Parse the arguments of ``benchmark soak``."""
    return benchmark.parse_args(['soak', *(sys.argv[1:] if argv is None else argv)])


if __name__ == '__main__':
    sys.exit(benchmark.main(['soak', *sys.argv[1:]]))
