"""The package's shape, pinned: layering (STYLE rules 1, 7-9) and composition over mixins (rule 14).

Read from the source with ``ast``; nothing is imported or run.
"""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "msgr"
MODULES = sorted(p for p in PKG.rglob("*.py"))


def rel(path: Path) -> str:
    return path.relative_to(PKG.parent).as_posix()


def imports(path: Path) -> set:
    """Absolute names of every module ``path`` imports (relative ones resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = rel(path)[:-3].replace("/", ".").rsplit(".", 1)[0]
    if path.name == "__init__.py":
        package = rel(path.parent).replace("/", ".")
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            out.add(base)
            out |= {f"{base}.{a.name}" for a in node.names}
    return out


def importers(prefixes: tuple) -> set:
    """The modules that import anything under one of ``prefixes``."""
    return {rel(p) for p in MODULES
            if any(n == pre or n.startswith(pre + ".") for n in imports(p) for pre in prefixes)}


def test_the_protocol_is_sans_io():
    """msgr/protocol/ touches no socket, selector, thread, clock or transport."""
    banned = ("socket", "select", "selectors", "threading", "time", "msgr.transports",
              "msgr.reactor")
    bad = {m for m in importers(banned) if m.startswith("msgr/protocol/")}
    assert bad == set()


def test_sockets_live_only_in_transports_and_selectors_only_in_reactors():
    assert {m for m in importers(("socket",)) if not m.startswith("msgr/transports/")} == set()
    assert {m for m in importers(("select", "selectors"))
            if not m.startswith("msgr/reactor/")} == set()


def test_only_the_io_side_and_the_messenger_reach_transports():
    """The messenger makes transports; the IOHandler drives them (the exporter and the
    conformance suite use the error boundary and buffer helpers)."""
    assert importers(("msgr.transports",)) <= {
        "msgr/messenger.py", "msgr/io_handler.py", "msgr/metrics.py",
        "msgr/testing/transport_checks.py", "msgr/transports/base.py",
        "msgr/transports/tcp.py", "msgr/transports/inject.py", "msgr/transports/__init__.py"}


def test_unit_tests_use_no_sockets_threads_or_sleeps():
    """STYLE rule 17: unit tests pump bytes and move a mock clock; they open no
    socket, start no thread and never sleep (those tests go to integration/)."""
    bad = []
    for p in sorted((PKG.parent / "tests" / "unit").glob("*.py")):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        names = imports(p)
        if names & {"socket", "threading", "selectors"}:
            bad.append((p.name, sorted(names & {"socket", "threading", "selectors"})))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "sleep":
                bad.append((p.name, "sleep"))
    assert bad == []


def _classes() -> list:
    out = []
    for p in MODULES:
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                out.append((rel(p), node))
    return out


def _base_name(b) -> str:
    if isinstance(b, ast.Name):
        return b.id
    if isinstance(b, ast.Attribute):
        return b.attr
    if isinstance(b, ast.Subscript):
        return _base_name(b.value)
    return ""


def test_no_class_mixes_in_project_classes():
    """One object per job: no class has more than one base defined in msgr (the
    error hierarchy included; Python's own bases, such as ValueError, do not count)."""
    ours = {node.name for _, node in _classes()}
    mixed = [(path, node.name, [_base_name(b) for b in node.bases])
             for path, node in _classes()
             if sum(_base_name(b) in ours for b in node.bases) > 1]
    assert mixed == []


# Hot loops kept in one frame on purpose (a call per message costs more than the
# length): framing a batch, decoding a run of messages, writing until the kernel pushes back.
LONG_ON_PURPOSE = {("msgr/protocol/tx.py", "_frame_once"), ("msgr/_native/decode.py", "decode_run"),
                   ("msgr/io_handler.py", "write")}


def _code_lines(node) -> int:
    """A function's lines without its docstring."""
    n = node.end_lineno - node.lineno + 1
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
            and isinstance(first.value.value, str):
        n -= first.end_lineno - first.lineno + 1
    return n


def test_functions_stay_small():
    """STYLE rule 14's 40-line cap per function (docstrings aside), but for the hot loops."""
    long = [(rel(p), node.name, _code_lines(node))
            for p in MODULES for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and _code_lines(node) > 40 and (rel(p), node.name) not in LONG_ON_PURPOSE]
    assert long == []
