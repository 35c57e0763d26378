"""Run by the Slurm job script's exit trap on PCS: upload the tail of the job's stderr to S3.

The Lambda that polls a PCS job cannot read the cluster's filesystem, so the job leaves the last
``LOG_TAIL_BYTES`` of its stderr at ``s3://$HELIXFLOW_LOG_BUCKET/$HELIXFLOW_LOG_PREFIXslurm-$SLURM_JOB_ID.stderr``
where ``SlurmJobs.status`` reads it. The trap's own stderr is the job's stderr file (slurmstepd opened it), so
its path is found through ``/proc/self/fd/2`` rather than repeated in the script.
"""

from __future__ import annotations

import os
import sys

from helixflow.pipeline.slurm_jobs import read_tail


def main() -> int:
    import boto3

    tail = read_tail(os.readlink("/proc/self/fd/2"))
    key = f"{os.environ['HELIXFLOW_LOG_PREFIX']}slurm-{os.environ['SLURM_JOB_ID']}.stderr"
    boto3.client("s3").put_object(Bucket=os.environ["HELIXFLOW_LOG_BUCKET"], Key=key, Body=tail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
