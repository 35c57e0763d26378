"""Read template.yaml the way the local stack needs it: functions, layers, tables, the state machine.

The local stack creates its resources from the same template that `sam deploy` uses, so a function, table or
substitution added there is picked up here without a second list to keep in step. Only the intrinsic
functions our template uses are resolved (Ref, Fn::GetAtt .Arn, Fn::Sub); anything else is an error that
names the construct, not a silent guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_SHORT_TAGS = {"!Ref": "Ref", "!GetAtt": "Fn::GetAtt", "!Sub": "Fn::Sub", "!If": "Fn::If", "!Join": "Fn::Join",
               "!Select": "Fn::Select", "!Equals": "Fn::Equals", "!Not": "Fn::Not", "!FindInMap": "Fn::FindInMap"}


class _TemplateLoader(yaml.SafeLoader):
    pass


def _construct_intrinsic(name: str):
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}
    return construct


for _tag, _name in _SHORT_TAGS.items():
    _TemplateLoader.add_constructor(_tag, _construct_intrinsic(_name))


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    code_dir: Path
    handler: str
    timeout: int
    memory_mb: int
    environment: dict[str, str]
    layer_dirs: tuple[Path, ...]


@dataclass
class LocalNames:
    """Physical names and ARNs the local stack gives each resource."""

    stack_name: str
    region: str
    account: str
    parameters: dict[str, str] = field(default_factory=dict)  # like `sam deploy --parameter-overrides`
    physical: dict[str, str] = field(default_factory=dict)  # logical id -> Ref value
    arns: dict[str, str] = field(default_factory=dict)  # logical id -> Arn attribute


class Template:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.root = path.parent
        self.document = yaml.load(path.read_text(), Loader=_TemplateLoader)  # noqa: S506 - SafeLoader subclass
        self.resources: dict[str, dict[str, Any]] = self.document["Resources"]

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    def parameter_defaults(self) -> dict[str, str]:
        return {k: str(v.get("Default", "")) for k, v in self.document.get("Parameters", {}).items()}

    def resolve(self, value: Any, names: LocalNames) -> Any:
        if isinstance(value, list):
            return [self.resolve(v, names) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self._ref(arg, names)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg
                if attribute != "Arn" or logical_id not in names.arns:
                    raise ValueError(f"local stack cannot resolve Fn::GetAtt {logical_id}.{attribute}")
                return names.arns[logical_id]
            if key == "Fn::Sub":
                return self._sub(arg, names)
            if key.startswith("Fn::"):
                raise ValueError(f"local stack does not resolve {key} (used in {self.path.name})")
        return {k: self.resolve(v, names) for k, v in value.items()}

    def _ref(self, name: str, names: LocalNames) -> str:
        pseudo = {"AWS::Region": names.region, "AWS::AccountId": names.account, "AWS::StackName": names.stack_name,
                  "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
        if name in pseudo:
            return pseudo[name]
        if name in names.physical:
            return names.physical[name]
        if name in names.parameters:
            return names.parameters[name]
        defaults = self.parameter_defaults()
        if name in defaults:
            return defaults[name]
        raise ValueError(f"local stack cannot resolve Ref {name}")

    def _sub(self, arg: Any, names: LocalNames) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1], names))

        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token in variables:
                return str(variables[token])
            if "." in token:
                return str(self.resolve({"Fn::GetAtt": token.split(".", 1)}, names))
            return str(self._ref(token, names))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def functions(self, names: LocalNames) -> list[FunctionSpec]:
        globals_ = self.document.get("Globals", {}).get("Function", {})
        layers = {k: self.root / v["Properties"]["ContentUri"]
                  for k, v in self.of_type("AWS::Serverless::LayerVersion").items()}
        specs = []
        for logical_id, resource in self.of_type("AWS::Serverless::Function").items():
            props = {**globals_, **resource["Properties"]}
            environment = {
                **self.resolve(globals_.get("Environment", {}).get("Variables", {}), names),
                **self.resolve(resource["Properties"].get("Environment", {}).get("Variables", {}), names),
            }
            layer_dirs = tuple(layers[layer["Ref"]] for layer in props.get("Layers", [])
                               if isinstance(layer, dict) and layer.get("Ref") in layers)
            if props.get("PackageType") == "Image":
                # The image's handlers are the .py files next to its Dockerfile, and the image copies the package
                # from this checkout (COPY layers/helixflow/helixflow), so it does here too: a venv installed from
                # another checkout must not hand these handlers another version of the package.
                metadata = resource.get("Metadata", {})
                context = self.root / metadata.get("DockerContext", ".")
                code_dir = context / Path(metadata["Dockerfile"]).parent
                handler = props["ImageConfig"]["Command"][0]
                layer_dirs = (context / "layers" / "helixflow",)
            else:
                code_dir, handler = self.root / props["CodeUri"], props["Handler"]
            specs.append(FunctionSpec(
                logical_id=logical_id, name=names.physical[logical_id], code_dir=code_dir,
                handler=handler, timeout=int(props.get("Timeout", 3)),
                memory_mb=int(props.get("MemorySize", 128)),
                environment={k: str(v) for k, v in environment.items()}, layer_dirs=layer_dirs))
        return specs

    def state_machine(self, names: LocalNames) -> tuple[str, str]:
        """(logical id, definition text with DefinitionSubstitutions applied) of the one state machine."""
        (logical_id, resource), = self.of_type("AWS::Serverless::StateMachine").items()
        props = resource["Properties"]
        definition = (self.root / props["DefinitionUri"]).read_text()
        for key, value in self.resolve(props.get("DefinitionSubstitutions", {}), names).items():
            definition = definition.replace("${" + key + "}", str(value))
        leftover = re.findall(r"\$\{(\w+)\}", definition)
        if leftover:
            raise ValueError(f"DefinitionSubstitutions missing for: {', '.join(sorted(set(leftover)))}")
        return logical_id, definition
