"""The software versions of the environment a stage runs in, for pipeline_info/software_versions.yml.

Stages run in different environments (the Validate and Publish Lambdas on the layer, Phase 1 in its container
image or on the Ray cluster, Phase 2 in the Slurm job), so each stage reports its own and Publish collates them
by stage, as nf-core's versions.yml does by process. Reading distribution metadata imports nothing heavy.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib import metadata

from helixflow import __version__

# The distributions whose versions decide each stage's results, by the environment that stage runs in.
VALIDATE = ("numpy", "isal", "pydantic")
PHASE1 = ("numpy", "numba", "llvmlite", "pyarrow", "isal")
PUBLISH = ("aws-lambda-powertools", "boto3", "pydantic")
REPORT = ("multiqc", "plotly", "numpy", "pyarrow")


def environment_versions(distributions: Iterable[str]) -> dict[str, str]:
    """helixflow's and Python's versions, and each of ``distributions`` installed here (absent ones are
    left out: the stage did not use them)."""
    versions = {"helixflow": __version__, "python": platform.python_version()}
    for distribution in distributions:
        try:
            versions[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return versions
