"""The Athena/Glue catalog over results/: which file of a published run each table reads.

A run's results/<sample>/<run_id>/ holds many kinds of files side by side (qc/ has the fastp JSON, the MultiQC
content and the HTML report; pipeline_info/ has params, versions, cost and the trace), and a Glue table reads every
object under its location. So each table (infra/catalog.yaml) is a symlink table: its location, catalog/<table>/,
holds one small text file per run naming that run's file, and Athena reads exactly the files named. The links are
written when the run's manifest appears (it is written last), so a half-published run is never queried.
"""

from __future__ import annotations

import json
from typing import Any

from helixflow.pipeline.keys import RESULTS_PREFIX
from helixflow.pipeline.publish import MANIFEST_NAME

CATALOG_PREFIX = "catalog/"
# Table name -> the file of a run it reads, relative to the run's results prefix.
TABLE_FILES = {
    "qc": "qc/{sample}.fastp.json",
    "embeddings": "embeddings/{sample}.parquet",
    "trace": "pipeline_info/trace.tsv",
}


def is_manifest_key(key: str) -> bool:
    parts = key.split("/")
    return key.startswith(RESULTS_PREFIX) and len(parts) == 4 and parts[3] == MANIFEST_NAME


def symlinks(manifest: dict[str, Any]) -> dict[str, str]:
    """Key -> body of each table's link for one published run (only the tables whose file the run has)."""
    bucket, prefix = manifest["bucket"], manifest["prefix"]
    published = {entry["path"] for entry in manifest["files"]}
    links = {}
    for table, pattern in TABLE_FILES.items():
        path = pattern.format(sample=manifest["sample"])
        if path in published:
            links[f"{CATALOG_PREFIX}{table}/{manifest['sample']}.{manifest['run_id']}.txt"] = \
                f"s3://{bucket}/{prefix}{path}\n"
    return links


def register_run(s3: Any, bucket: str, manifest_key: str) -> list[str]:
    """Write the catalog links of the run whose manifest is ``manifest_key``; returns the keys written."""
    if not is_manifest_key(manifest_key):
        return []
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
    links = symlinks(manifest)
    for key, body in links.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="text/plain")
    return sorted(links)
