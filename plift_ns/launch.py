"""Console-script launchers that set process-wide defaults before torch is imported."""

from __future__ import annotations

import os
import sys


def passive_omp() -> None:
    """Let idle OpenMP threads sleep instead of spin (an explicit user setting wins).

    Spinning threads make torch 10-20x slower when the CPU is shared (measured on 2 busy cores: 4.6 vs 0.23 s/frame
    for ``plift-labels``). OpenMP reads the setting once, when torch loads, so this must run before that import.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def labels() -> None:
    """``plift-labels``."""
    passive_omp()
    from plift_ns.labels.cli import main

    sys.exit(main())


def synth() -> None:
    """``plift-synth``."""
    from plift_ns.synthetic.cli import main

    sys.exit(main())
