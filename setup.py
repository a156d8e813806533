"""Packaging for msgr: the pure-Python package, one cffi extension and the Cython modules.

The C kernels (CRC32C, the frame scanner, the dispatch ring) live in
``cffi_build/`` and are compiled by ``cffi_modules``; ``cffi_build`` itself is
not installed. The compiled message core (``msgr/_native/_*.pyx``) is built by
Cython (``build-system.requires`` in pyproject.toml); its generated ``.c`` files
are not committed. ``tools/`` (the load generator, benchmarks, soak and generators; run from a
checkout as ``python -m tools.<name>``) installs as the package ``msgr_tools`` with all its
subpackages; ``msgr-loadgen`` runs ``msgr_tools.loadgen``.
"""
from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

CYTHON_MODULES = ["_message", "_decode", "_layout"]

setup(
    name="msgr",
    version="0.1.0",
    description="An event-driven msgr2.1 (Ceph wire protocol) messenger for Python",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=(find_packages(include=["msgr", "msgr.*"])
              + ["msgr_tools"] + ["msgr_tools." + p for p in find_packages("tools")]),
    package_dir={"msgr_tools": "tools"},
    setup_requires=["cffi>=1.15", "Cython>=3.0"],
    cffi_modules=["cffi_build/build_native.py:ffibuilder"],
    ext_modules=cythonize(
        [Extension(f"msgr._native.{m}", [f"msgr/_native/{m}.pyx"], extra_compile_args=["-O2"])
         for m in CYTHON_MODULES],
        compiler_directives={"language_level": 3}, quiet=True),
    install_requires=["cffi>=1.15", "prometheus-client>=0.17"],
    extras_require={
        "test": ["pytest>=7", "pytest-timeout>=2", "hypothesis>=6"],
        "plot": ["matplotlib>=3.5"],
        "peers": ["pyzmq>=25", "uvloop>=0.17"],
    },
    entry_points={"console_scripts": ["msgr-loadgen=msgr_tools.loadgen.workload:main"]},
    classifiers=["Programming Language :: Python :: 3", "Operating System :: POSIX :: Linux"],
)
