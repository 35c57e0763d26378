"""The state machine as an SVG graph, laid out by Graphviz's ``dot`` (Debian's graphviz, a real layout engine;
the browser fetches nothing). States are boxes with their type, Choice branches are labelled edges, Catch edges
dashed, a Map is a dashed group around the states it runs per item. Each state's ``<g>`` has the id
``state-<Name>`` and a class ``st-<status>``, which the page's stylesheet colours and its script updates."""

from __future__ import annotations

import functools
import html
import json
import re
import shutil
import subprocess

from helixflow_local.asl import Machine, read_machine
from helixflow_local.history import NOT_RUN
from helixflow_local.exit_codes import ToolError

DOT_TIMEOUT_S = 20


class GraphvizMissing(ToolError):
    """The console draws the graph with Graphviz's `dot` (Debian package graphviz, in the Makefile)."""

    code = "GRAPHVIZ_MISSING"


def status_class(status: str) -> str:
    return "st-" + status.replace(" ", "-")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(machine: Machine) -> str:
    """The DOT text of the machine. State names come from the definition and are quoted, never interpreted."""
    lines = ['digraph states {', '  graph [rankdir=TB, nodesep=0.35, ranksep=0.45, compound=true, '
             'fontname="Helvetica", fontsize=11, bgcolor="transparent"];',
             '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#8a94a6", '
             'fontname="Helvetica", fontsize=11, margin="0.12,0.05", height=0.4];',
             '  edge [color="#7b8394", arrowsize=0.6, fontname="Helvetica", fontsize=9, fontcolor="#5a6170"];',
             '  "__start" [shape=circle, label="", width=0.18, height=0.18, style=filled, fillcolor="#5a6170"];']

    def node(name: str, indent: str = "  ") -> str:
        label = (f'<{html.escape(name)}<BR/><FONT POINT-SIZE="8" COLOR="#6b7280">'
                 f'{html.escape(machine.types[name])}</FONT>>')
        return (f'{indent}{_quote(name)} [id={_quote("state-" + name)}, class="state {status_class(NOT_RUN)}", '
                f'label={label}];')

    groups = {name for name in machine.types if name in machine.starts}
    for name in machine.order:
        if machine.parent[name] is None and name not in groups:
            lines.append(node(name))
    for group in groups:
        lines.append(f'  subgraph {_quote("cluster_" + group)} {{')
        lines.append(f'    id={_quote("group-" + group)}; class="group"; style="dashed,rounded"; color="#8a94a6"; '
                     f'label={_quote(group + " (items)")}; fontsize=10; fontcolor="#5a6170";')
        lines.append(node(group, "    "))
        lines.extend(node(inner, "    ") for inner in machine.order if machine.parent[inner] == group)
        lines.append(f'    {_quote(group)} -> {_quote(machine.starts[group])} [style=dotted, label="each item"];')
        lines.append("  }")
    lines.append(f'  "__start" -> {_quote(machine.start)};')
    ends = {g: [n for n in machine.order if machine.parent[n] == g and not any(e.source == n for e in machine.edges)]
            for g in groups}
    for edge in machine.edges:
        attributes = []
        source = edge.source
        if edge.source in groups and ends[edge.source]:  # leave the group from its last state, at its border
            source = ends[edge.source][0]
            attributes.append(f'ltail={_quote("cluster_" + edge.source)}')
        if edge.target in groups:
            attributes.append(f'lhead={_quote("cluster_" + edge.target)}')
        if edge.kind == "catch":
            attributes += ['style=dashed', 'color="#c0c6d0"']
        elif edge.label:
            attributes.append(f"label={_quote(edge.label)}")
        listed = f' [{", ".join(attributes)}]' if attributes else ""
        lines.append(f"  {_quote(source)} -> {_quote(edge.target)}{listed};")
    lines.append("}")
    return "\n".join(lines)


@functools.lru_cache(maxsize=8)
def _layout(definition: str) -> str:
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizMissing("`dot` not found: install Debian's graphviz (make install-system)")
    # The DOT text goes in on stdin, as an argument list: nothing passes through a shell.
    result = subprocess.run([dot, "-Tsvg"], input=to_dot(read_machine(json.loads(definition))), capture_output=True,
                            text=True, timeout=DOT_TIMEOUT_S, check=True)
    svg = result.stdout
    svg = svg[svg.index("<svg"):]  # the XML prolog and DOCTYPE cannot sit inside an HTML page
    return re.sub(r'<svg width="[^"]*" height="[^"]*"', '<svg class="graph" role="img"', svg, count=1)


def state_graph(definition: str, statuses: dict[str, str]) -> str:
    """The SVG of ``definition`` (DescribeStateMachine's text) with each state in its status's class."""
    svg = _layout(definition)

    def colour(match: re.Match) -> str:
        status = statuses.get(html.unescape(match.group(1)), NOT_RUN)
        return f'<g id="state-{match.group(1)}" class="node state {status_class(status)}"'

    return re.sub(r'<g id="state&#45;([^"]+)" class="node state st&#45;not&#45;run"', colour, svg)
