"""Renders ProtocolV2's transition table (msgr/protocol/states.py) as Graphviz DOT.

``python -m tools.gen_state_diagram [--out FILE.dot]``; render with
``dot -Tpng FILE.dot -o states.png``. Local inputs that every live state
accepts (FAULT, CLOSE, TIMEOUT) are summarised in a note instead of drawn
from every state. The table is the single source of truth: this tool only
reads it.
"""
from __future__ import annotations

import argparse
import sys

from msgr.protocol.states import TRANSITIONS, ConnState, Input

_EVERYWHERE = {Input.FAULT, Input.CLOSE, Input.TIMEOUT}


def edges() -> list[tuple[str, str, str]]:
    """(from, to, label) for every table entry except the everywhere-inputs."""
    out = []
    for (state, inp), t in sorted(TRANSITIONS.items(), key=lambda kv: (kv[0][0].value, str(kv[0][1]))):
        if inp in _EVERYWHERE:
            continue
        label = f"{inp.name} / {t.action}"
        out.append((state.name, t.next.name, label))
        for alt in sorted(t.alt, key=lambda s: s.value):
            out.append((state.name, alt.name, label + " (alt)"))
    return out


def render() -> str:
    lines = ["digraph ProtocolV2 {", '  rankdir=LR; node [shape=box, fontname="monospace"];']
    for s in ConnState:
        lines.append(f'  {s.name} [style={"bold" if s is ConnState.READY else "solid"}];')
    for a, b, label in edges():
        style = ', style=dashed' if label.endswith("(alt)") else ""
        lines.append(f'  {a} -> {b} [label="{label}"{style}];')
    lines.append('  note [shape=note, label="every live state: FAULT -> CLOSED (or WAIT),\\n'
                 'CLOSE -> CLOSED, TIMEOUT -> CLOSED"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write here instead of stdout")
    args = ap.parse_args(argv)
    dot = render()
    if args.out:
        with open(args.out, "w") as f:
            f.write(dot)
    else:
        sys.stdout.write(dot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
