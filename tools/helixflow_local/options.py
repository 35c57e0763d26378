"""Command-line options that are run parameters come from the one schema, ``RunParameters``.

Their default, help and accepted range are the schema's, and each value is checked by the schema, so
`helixflow preprocess --quality 99` is refused exactly as a sidecar ``{"quality": 99}`` is.
"""

from __future__ import annotations

from typing import Any

import click
from pydantic import ValidationError

from helixflow.pipeline.params import RunParameters, field_range


def schema_option(field: str, *param_decls: str, help_suffix: str = "") -> Any:
    info = RunParameters.model_fields[field]

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:  # an optional field left unset
            return value
        try:
            RunParameters.model_validate({field: value})
        except ValidationError as exc:
            raise click.BadParameter("; ".join(error["msg"] for error in exc.errors()), ctx, param) from None
        return value

    python_type = {int: int, bool: bool}.get(info.annotation, str)
    return click.option(*param_decls, type=python_type, default=info.default, callback=check,
                        show_default=info.default is not None,
                        help=f"{info.description} [{field_range(field)}]{help_suffix}")


threads_option = click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
                              help="Threads compressing each trimmed FASTQ (the transform and the embeddings run on "
                                   "one thread: Phase 1 scales by chunks, a Lambda or a Ray task each).")
