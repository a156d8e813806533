"""asan.py: the test suites against msgr's compiled modules built with AddressSanitizer.

    python -m tools.asan [pytest paths...]     # default: tests/unit tests/integration

The working tree is copied to a temporary directory, its native modules (the
cffi kernels and the Cython message core) are built there with
``-fsanitize=address``, and pytest runs against that copy with GCC's libasan
preloaded (the interpreter itself is not instrumented) and
``PYTHONMALLOC=malloc``, so that every Python buffer the compiled code reads or
writes is a malloc block with red zones around it. An out-of-bounds access,
a use after free or a double free aborts the run with ASan's report; the exit
status is pytest's (non-zero on any failure or abort). Leak detection is off:
the interpreter keeps memory at exit by design (the leak tests in
``tests/integration/test_native_memory.py`` count live memory instead), and
tools.bench.instructions' smoke test is left out (valgrind cannot run beside
ASan's runtime); ``MSGR_ASAN=1`` tells tests that RSS includes ASan's quarantine. ``.ci/run`` runs this; it needs
gcc (libasan comes with it on Debian).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGS = "-fsanitize=address -fno-omit-frame-pointer -g -O1"


def libasan() -> str:
    """The path of GCC's libasan, to preload; ``SystemExit`` when there is none."""
    out = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True)
    path = out.stdout.strip()
    if out.returncode or not os.path.isabs(path) or not os.path.exists(path):
        raise SystemExit("asan: gcc has no libasan.so here (Debian: apt install gcc)")
    return os.path.realpath(path)


def copy_tree(dest: Path) -> None:
    """The files git knows (tracked, or new and not ignored), as they are now."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        src, dst = ROOT / name.decode(), dest / name.decode()
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def build(tree: Path) -> None:
    """Builds every native module in place, instrumented."""
    env = dict(os.environ, CFLAGS=FLAGS, LDFLAGS="-fsanitize=address")
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=tree,
                   env=env, check=True, stdout=subprocess.DEVNULL)


def run(tree: Path, paths: list) -> int:
    """pytest in ``tree`` with libasan preloaded; returns its exit status.

    ASan's reports go to files (pytest's output capture would swallow an aborting
    process's stderr) and are printed after the run.
    """
    logs = tree / "asan-report"
    env = dict(os.environ, LD_PRELOAD=libasan(), PYTHONMALLOC="malloc", CI="true",
               MSGR_NATIVE="1",         # the instrumented modules, or an ImportError
               MSGR_ASAN="1",           # tests that measure RSS know ASan's quarantine is in it
               ASAN_OPTIONS=f"detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:"
                            f"log_path={logs}")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           # valgrind (tools.bench.instructions' smoke test) cannot run beside ASan's runtime
           "--deselect", "tests/integration/test_bench_instructions_smoke.py", *paths]
    status = subprocess.run(cmd, cwd=tree, env=env).returncode
    for report in sorted(tree.glob("asan-report*")):
        print(report.read_text(errors="replace"), file=sys.stderr)
        status = status or 1
    return status


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.asan", description=__doc__.split("\n")[0])
    p.add_argument("paths", nargs="*", default=["tests/unit", "tests/integration"],
                   help="what pytest runs (default: the unit and integration suites)")
    p.add_argument("--keep", action="store_true", help="keep the instrumented tree")
    opts = p.parse_args(argv)
    libasan()
    tree = Path(tempfile.mkdtemp(prefix="msgr-asan-"))
    try:
        copy_tree(tree)
        build(tree)
        print(f"asan: instrumented build in {tree}; running {' '.join(opts.paths)}", flush=True)
        return run(tree, opts.paths)
    finally:
        if not opts.keep:
            shutil.rmtree(tree, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
