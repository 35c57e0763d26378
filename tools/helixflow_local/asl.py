"""The shape of a state machine definition (Amazon States Language): its states, their types, the Map each
sits in, and the transitions between them (Next, Choice branches and Default, Catch). Read by the console's
graph and by the CLI's progress, from the definition the stack reports (DescribeStateMachine), which is
statemachines/pipeline.asl.json with its substitutions resolved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str  # "next", "choice", "default", "catch"
    label: str = ""


@dataclass
class Machine:
    start: str
    types: dict[str, str] = field(default_factory=dict)  # state -> Type
    parent: dict[str, str | None] = field(default_factory=dict)  # state -> the Map/Parallel it runs in
    starts: dict[str, str] = field(default_factory=dict)  # Map/Parallel -> its first inner state
    edges: list[Edge] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # states as the definition lists them

    def in_loop(self) -> set[str]:
        """States on a cycle (a job's Wait -> Poll -> Choice loop): they finish many times per run."""
        successors: dict[str, set[str]] = {name: set() for name in self.types}
        for edge in self.edges:
            successors[edge.source].add(edge.target)
        looping = set()
        for name in self.types:
            seen, stack = set(), list(successors[name])
            while stack:
                node = stack.pop()
                if node == name:
                    looping.add(name)
                    break
                if node not in seen:
                    seen.add(node)
                    stack.extend(successors[node])
        return looping


def _choice_label(rule: dict[str, Any]) -> str:
    """A short reading of a Choice rule (the value it compares with), for the edge label."""
    if "Not" in rule:
        return "not " + _choice_label(rule["Not"])
    for combinator in ("And", "Or"):
        if combinator in rule:
            return f" {combinator.lower()} ".join(_choice_label(inner) for inner in rule[combinator])
    for key, value in rule.items():
        if key not in ("Variable", "Next"):
            text = str(value)
            return text if len(text) <= 24 else text[:21] + "..."
    return ""


def read_machine(definition: dict[str, Any]) -> Machine:
    machine = Machine(start=definition["StartAt"])
    _read_states(machine, definition["States"], None)
    return machine


def _read_states(machine: Machine, states: dict[str, Any], parent: str | None) -> None:
    for name, state in states.items():
        machine.types[name] = state["Type"]
        machine.parent[name] = parent
        machine.order.append(name)
        if state.get("Next"):
            machine.edges.append(Edge(name, state["Next"], "next"))
        for rule in state.get("Choices", []):
            machine.edges.append(Edge(name, rule["Next"], "choice", _choice_label(rule)))
        if state.get("Default"):
            machine.edges.append(Edge(name, state["Default"], "default", "default"))
        for catch in state.get("Catch", []):
            machine.edges.append(Edge(name, catch["Next"], "catch", ", ".join(catch["ErrorEquals"])))
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            machine.starts[name] = processor["StartAt"]
            _read_states(machine, processor["States"], name)
        for branch in state.get("Branches", []):
            machine.starts.setdefault(name, branch["StartAt"])
            _read_states(machine, branch["States"], name)
