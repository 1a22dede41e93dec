"""Files of softmax_fast: model files and data files.

:mod:`softmax_fast.io.model_file`
    A fitted model as a versioned ``.npz`` archive, read without pickle and checked member by
    member (:func:`save_model`, :func:`load_model`, :func:`read_model_arrays`).
:mod:`softmax_fast.io.data_files`
    The data files of the ``softmax-fast`` command: CSV with a header row, ``.npz`` and
    svmlight/libsvm text (:func:`read_data`).
"""

from .data_files import read_data
from .model_file import load_model, read_model_arrays, save_model

__all__ = ["load_model", "read_data", "read_model_arrays", "save_model"]
