"""Hand-crafted .npz archives for the IO tests (model files and data files): members written
as given, and .npy encodings whose header may lie."""

import io as io_module
import zipfile

import numpy as np


def write_members(path, members, compression=zipfile.ZIP_STORED):
    """A zip archive whose members are written as given: arrays as .npy, bytes verbatim."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, value in members:
            if isinstance(value, bytes):
                archive.writestr(name, value)
            else:
                with archive.open(name, "w") as f:
                    np.lib.format.write_array(f, value, allow_pickle=True)


def npy_bytes(array, shape=None):
    """The .npy encoding of ``array``; with ``shape``, a header that lies about the shape."""
    buf = io_module.BytesIO()
    header = np.lib.format.header_data_from_array_1_0(array)
    if shape is not None:
        header["shape"] = shape
    np.lib.format.write_array_header_1_0(buf, header)
    buf.write(np.ascontiguousarray(array).tobytes())
    return buf.getvalue()
