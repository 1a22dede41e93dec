"""``softmax_fast.reference`` for the reference's own tests, also where the package cannot be
imported (its compiled extension not built yet, or broken): then reference.py, which imports
nothing of the package, is loaded by file path."""

import importlib.util
from pathlib import Path

try:
    from softmax_fast import reference as ref
except Exception:  # the compiled extension is missing or broken: load reference.py directly
    _path = Path(__file__).resolve().parents[1] / "src" / "softmax_fast" / "reference.py"
    _spec = importlib.util.spec_from_file_location("_softmax_fast_reference", _path)
    ref = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(ref)

__all__ = ["ref"]
