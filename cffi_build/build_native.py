"""cffi builder for msgr's native layer (``msgr._native._cffi``).

The cdef is read from ``msgr_native.h``; the C sources (``crc32c.c``,
``frames_scan.c``, ``frames_build.c``, ``ring.c``) are concatenated, each preceded by a ``#line``
directive so compiler messages name the original file, and compiled as one
translation unit together with cffi's generated glue.

Two ways to use it:

* ``setup.py``: ``cffi_modules=["cffi_build/build_native.py:ffibuilder"]``.
* As a script, ``python cffi_build/build_native.py``: builds in place, so
  that the extension lands at ``msgr/_native/_cffi*.so`` next to its Python
  wrappers.  Intermediate files (generated C, objects) go to
  ``build/cffi_native`` under the project root.
"""

from __future__ import annotations

import pathlib
import shutil
import sys

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
MODULE = "msgr._native._cffi"
HEADER = "msgr_native.h"
SOURCES = ("crc32c.c", "frames_scan.c", "frames_build.c", "ring.c")


def _read(name: str) -> str:
    return (HERE / name).read_text(encoding="utf-8")


def _c_source() -> str:
    """Returns the concatenated C sources, each tagged with ``#line``."""
    parts = []
    for name in SOURCES:
        path = (HERE / name).as_posix()
        parts.append(f'#line 1 "{path}"\n{_read(name)}')
    return "\n".join(parts)


ffibuilder = FFI()
ffibuilder.cdef(_read(HEADER))
ffibuilder.set_source(
    MODULE,
    _c_source(),
    include_dirs=[str(HERE)],
    depends=[str(HERE / n) for n in (HEADER, *SOURCES)],
    extra_compile_args=["-O2"],
)


def build_in_place(verbose: bool = False) -> pathlib.Path:
    """Compiles the extension and copies it into ``msgr/_native/``.

    Args:
        verbose: print the compiler command lines.

    Returns:
        The path of the installed shared object.
    """
    tmpdir = ROOT / "build" / "cffi_native"
    tmpdir.mkdir(parents=True, exist_ok=True)
    built = pathlib.Path(
        ffibuilder.compile(tmpdir=str(tmpdir), verbose=verbose))
    dest_dir = ROOT / "msgr" / "_native"
    for stale in dest_dir.glob("_cffi.*.so"):
        if stale.name != built.name:
            stale.unlink()
    dest = dest_dir / built.name
    shutil.copy2(built, dest)
    return dest


if __name__ == "__main__":
    print(build_in_place(verbose="-v" in sys.argv[1:]))
