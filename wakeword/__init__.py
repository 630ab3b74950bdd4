"""wakeword: say the word, run your hook.

The public API is small: a :class:`Detector` turns 16 kHz audio into
:class:`Detection` events using one or more :class:`WakeWordModel` files;
:func:`load_config` reads the YAML the daemon runs from. Errors a person can
act on are :mod:`wakeword.errors` exceptions.
"""

from __future__ import annotations

import os
import sys

if "numpy" not in sys.modules:
    # The front end multiplies small matrices: multi-threaded BLAS only adds spin-wait
    # overhead there (2-3x the CPU of one thread on a Pi-sized machine). Callers who
    # set the variable themselves, or imported numpy first, keep their own choice.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from importlib.metadata import PackageNotFoundError, version

from wakeword import errors
from wakeword.config import Config, load_config
from wakeword.detector import Detection
from wakeword.engine import Detector
from wakeword.model import WakeWordModel

try:
    __version__ = version("wakeword")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["Config", "Detection", "Detector", "WakeWordModel", "__version__", "errors", "load_config"]
