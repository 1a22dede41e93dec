"""Reading ``.npz`` archives without pickle, each member's ``.npy`` header checked first.

Shared by the model files and the data files.  Nothing here unpickles: object arrays are refused
from their header, before any data is read.
"""

import math
import zipfile
import zlib
from os import PathLike

import numpy as np

_NPY_MAX_HEADER = 10000  # numpy's own default limit on a .npy header


class NpzError(Exception):
    """Why an .npz archive is refused (callers add the path)."""


def _npy_header(f):
    """(shape, fortran_order, dtype) of the .npy stream ``f``, leaving ``f`` at the data."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f, max_header_size=_NPY_MAX_HEADER)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f, max_header_size=_NPY_MAX_HEADER)
    raise NpzError(f".npy format version {version[0]}.{version[1]} is not supported")


def read_npz_checked(
    path: str | PathLike,
    allowed: frozenset[str] | None = None,
    max_bytes: int | None = None,
) -> dict[str, np.ndarray]:
    """The arrays of the .npz archive ``path``, each checked before it is read.

    Parameters
    ----------
    path : str or path-like
        The archive.
    allowed : set of str, optional
        The member names (without ``.npy``) that may appear; default: any.
    max_bytes : int, optional
        The most bytes the members may unpack to, counted from the zip directory before
        anything is decompressed; default: no limit.

    Returns
    -------
    dict of str to ndarray

    Raises
    ------
    NpzError
        When the file is not a zip archive, a member is not a ``.npy`` array (or is not in
        ``allowed``, or appears twice), the archive unpacks to more than ``max_bytes``, a header
        is malformed, declares an object (pickle) dtype, or declares a different amount of data
        than its member holds (truncated or hand-crafted; this also keeps a small file from
        making NumPy allocate terabytes).
    """
    try:
        if not zipfile.is_zipfile(path):
            raise NpzError("not an npz archive (a zip file of .npy arrays)")
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            names = [info.filename for info in infos]
            if len(set(names)) != len(names):
                raise NpzError("a member appears twice in the archive")
            for name in names:
                if not name.endswith(".npy"):
                    raise NpzError(f"member {name!r} is not a .npy array")
            keys = [name[: -len(".npy")] for name in names]
            if allowed is not None:
                unexpected = sorted(set(keys) - set(allowed))
                if unexpected:
                    raise NpzError(f"unexpected members: {', '.join(unexpected)}")
            total = sum(info.file_size for info in infos)
            if max_bytes is not None and total > max_bytes:
                raise NpzError(
                    f"it unpacks to {total:,} bytes, more than the limit of {max_bytes:,} "
                    f"(MAX_MODEL_BYTES)"
                )
            arrays = {}
            for key, info in zip(keys, infos, strict=True):
                with archive.open(info) as f:
                    shape, _, dtype = _npy_header(f)
                    if dtype.hasobject:
                        raise NpzError(f"{key}: object arrays are refused (they need pickle)")
                    data_bytes = math.prod(shape) * dtype.itemsize
                    held = info.file_size - f.tell()
                    if data_bytes != held:
                        raise NpzError(
                            f"{key}: the header declares {data_bytes:,} bytes of data "
                            f"(shape {shape}, {dtype}) but the member holds {held:,}"
                        )
                with archive.open(info) as f:
                    arrays[key] = np.lib.format.read_array(
                        f, allow_pickle=False, max_header_size=_NPY_MAX_HEADER
                    )
            return arrays
    except NpzError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        EOFError,
        OSError,
        ValueError,
        NotImplementedError,  # an unsupported compression method
        RuntimeError,  # an encrypted member
    ) as exc:
        raise NpzError(f"truncated or corrupt npz archive: {exc}") from None
