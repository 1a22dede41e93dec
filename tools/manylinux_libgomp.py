"""Provide a libgomp.so.1 old enough to vendor into a manylinux_2_28 (or older) wheel.

Why this exists
---------------
``auditwheel repair`` copies the OpenMP runtime the extension modules link against
(``libgomp.so.1``) into the wheel.  A wheel is only as portable as the newest glibc symbol that any
of its files needs: our extension modules need glibc <= 2.14 (they call no libm function;
``_sfmath.h`` has its own exp/log), but a host's own libgomp follows the host's glibc (Debian 12's
needs GLIBC_2.34), which would make the wheel manylinux_2_34 at best.  The manylinux container
images (what cibuildwheel uses) have an old-glibc libgomp, so there this script is not needed.
Elsewhere it takes the libgomp that the manylinux toolchain built: the copy vendored in a pinned
scikit-learn manylinux wheel from PyPI (GCC's libgomp, GPL-3.0 with the GCC Runtime Library
Exception, the same runtime every OpenMP wheel on PyPI vendors).
``SOFTMAX_FAST_LIBGOMP=/path/to/libgomp.so.1`` uses your own instead (for example one copied out of
a manylinux image).

Whatever the source, the library is checked before use: an ELF shared object for this machine's
architecture, needing no glibc symbol version newer than ``--max-glibc``, and defining every
``GOMP_*``/``omp_*`` symbol the built extension modules import.  It is written as
``<dir>/libgomp.so.1`` with that SONAME, for ``auditwheel repair --ldpaths`` /
``AUDITWHEEL_LD_LIBRARY_PATH``.

Usage::

    python tools/manylinux_libgomp.py OUTDIR --extension path/to/softmax_fast/_native/dense*.so \
        [--extension another.so ...] [--max-glibc 2.28]
"""

import argparse
import fnmatch
import glob
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

# The wheel whose vendored libgomp is used (built by the manylinux toolchain; needs glibc 2.17).
DONOR = "scikit-learn==1.9.1"
DONOR_LIB_GLOB = "scikit_learn.libs/libgomp*.so*"
OPENMP_SYMBOL = re.compile(r"^(GOMP_|omp_|GOACC_)")
ELF_MACHINE = {"x86_64": "EM_X86_64", "aarch64": "EM_AARCH64"}


def _version_tuple(text):
    return tuple(int(part) for part in text.split("."))


def glibc_versions_needed(path):
    """The GLIBC_x.y versions an ELF file requires, as tuples."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        needed = set()
        for section in elf.iter_sections():
            if isinstance(section, GNUVerNeedSection):
                for _verneed, aux_iter in section.iter_versions():
                    for aux in aux_iter:
                        if aux.name.startswith("GLIBC_"):
                            needed.add(_version_tuple(aux.name[len("GLIBC_") :]))
        return needed


def dynamic_symbols(path, *, defined):
    """Names of the dynamic symbols an ELF file defines (``defined=True``) or imports."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        table = elf.get_section_by_name(".dynsym")
        names = set()
        for sym in table.iter_symbols():
            is_defined = sym["st_shndx"] != "SHN_UNDEF"
            if sym.name and is_defined == defined:
                names.add(sym.name)
        return names


def elf_machine_and_soname(path):
    with open(path, "rb") as f:
        elf = ELFFile(f)
        soname = None
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                for tag in section.iter_tags():
                    if tag.entry.d_tag == "DT_SONAME":
                        soname = tag.soname
        return elf["e_machine"], soname


def check_runtime(lib, extensions, max_glibc):
    """Raise SystemExit with a clear message when ``lib`` cannot be vendored for ``extensions``
    (the paths of the built extension modules)."""
    machine, _ = elf_machine_and_soname(lib)
    want = ELF_MACHINE.get(platform.machine())
    if want is not None and machine != want:
        raise SystemExit(f"{lib}: built for {machine}, this machine needs {want}")
    newest = max(glibc_versions_needed(lib), default=(0,))
    if newest > max_glibc:
        raise SystemExit(
            f"{lib} needs GLIBC_{'.'.join(map(str, newest))}, newer than the manylinux "
            f"target's {'.'.join(map(str, max_glibc))}"
        )
    provided = dynamic_symbols(lib, defined=True)
    wanted = set()
    for extension in extensions:
        imports = {s for s in dynamic_symbols(extension, defined=False) if OPENMP_SYMBOL.match(s)}
        missing = imports - provided
        if missing:
            raise SystemExit(f"{lib} lacks OpenMP symbols {extension} uses: {sorted(missing)}")
        wanted |= imports
    return newest, sorted(wanted)


def fetch_from_donor(workdir):
    """Download the pinned donor wheel for this machine and return its libgomp's path."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            workdir,
            DONOR,
        ],
        check=True,
    )
    wheels = glob.glob(os.path.join(workdir, "*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one {DONOR} wheel, got {wheels}")
    with zipfile.ZipFile(wheels[0]) as zf:
        members = [n for n in zf.namelist() if fnmatch.fnmatch(n, DONOR_LIB_GLOB)]
        if len(members) != 1:
            raise SystemExit(f"{wheels[0]}: expected one libgomp, found {members}")
        return zf.extract(members[0], workdir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir")
    parser.add_argument(
        "--extension",
        action="append",
        required=True,
        help="a built extension module (.so); repeat for each",
    )
    parser.add_argument("--max-glibc", default="2.28", help="newest glibc allowed (2.28)")
    args = parser.parse_args(argv)
    max_glibc = _version_tuple(args.max_glibc)

    os.makedirs(args.outdir, exist_ok=True)
    target = os.path.join(args.outdir, "libgomp.so.1")
    with tempfile.TemporaryDirectory() as workdir:
        source = os.environ.get("SOFTMAX_FAST_LIBGOMP") or fetch_from_donor(workdir)
        newest, symbols = check_runtime(source, args.extension, max_glibc)
        shutil.copyfile(source, target)
    os.chmod(target, 0o755)
    # auditwheel resolves the extension modules' DT_NEEDED "libgomp.so.1" by file name; give the
    # copy the matching SONAME so the grafted library is self-consistent.
    subprocess.run(["patchelf", "--set-soname", "libgomp.so.1", target], check=True)
    print(
        f"libgomp for vendoring: {target} (from {source}); needs glibc "
        f"{'.'.join(map(str, newest))}; provides the {len(symbols)} OpenMP symbols the "
        "extension modules import"
    )


if __name__ == "__main__":
    main()
