"""The state contract: one pydantic model per stage result, and the execution state that carries them.

Every Task of statemachines/pipeline.asl.json returns one of these models (``model_dump()``), its
``ResultSelector`` picks exactly the model's fields, and its ``ResultPath`` puts the result into the slot of
``PipelineState`` named in ``TASK_RESULTS``. Handlers read their input with ``PipelineState.model_validate``
instead of indexing dicts, so a field renamed on one side fails a test (tests/unit/pipeline/test_state.py reads
the ASL and checks every selector and every ``$.a.b`` path against these models).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from helixflow.pipeline.jobs import JobHandle


class _Contract(BaseModel):
    # Unknown fields are a contract break, not something to carry along silently.
    model_config = ConfigDict(extra="forbid")


class SampleInput(_Contract):
    key: str
    etag: str
    size: int
    mate: int = Field(ge=0, le=2, description="0 single-end, 1 or 2")


class Phase1Summary(_Contract):
    outputs: list[str] = Field(description="paths relative to the results prefix")
    staged_prefix: str = Field(description="where the outputs wait for Publish (the phase's checkpoint)")
    reads_before: int
    reads_after: int
    chunks: int
    versions: dict[str, str] = Field(default_factory=dict,
                                     description="tool -> version in the environment this stage ran in")


class DeclaredSample(_Contract):
    """One sample of a samplesheet as its sheet's execution left it."""

    sample: str
    row: int
    files: list[str]
    present: list[str] = Field(description="its files already in the bucket when the sheet landed")
    started: str | None = Field(None, description="the execution started for it (None: its files' events will)")


class SamplesheetResult(_Contract):
    key: str
    samples: list[DeclaredSample]


class BatchRef(_Contract):
    """The samplesheet that declared a sample: its batch report gathers the samples of this sheet version."""

    sheet_key: str
    sheet_etag: str
    batch: str = Field(description="the sheet's batch name (incoming/<batch>.samplesheet.csv)")


class SampleRequest(_Contract):
    """ResolveSample's result: the sample this execution runs, or why it runs nothing (a samplesheet's execution
    declares samples instead of running one)."""

    status: Literal["ready", "waiting_for_mate", "already_processed", "already_running", "samplesheet"]
    run_id: str
    bucket: str
    sample: str
    inputs: list[SampleInput]
    params: dict[str, Any] = Field(default_factory=dict)
    results_prefix: str = ""
    errors_prefix: str = ""
    identity: str = Field("", description="run identity (helixflow.pipeline.runs); empty while a mate waits")
    previous_run: str | None = Field(None, description="the run that already processed (or runs) this identity")
    awaiting: str | None = Field(None, description="the mate a waiting first mate waits for")
    mate_wait_seconds: int = 0
    pairing_item: str = Field("", description="the pairing item a waiting mate recorded itself in")
    samplesheet: SamplesheetResult | None = Field(None, description="what a samplesheet's execution declared")
    resumed_phase1: Phase1Summary | None = Field(None, description="Phase 1 checkpoint of an earlier failed run")
    batch: BatchRef | None = Field(None, description="the samplesheet that declared this sample (None: no sheet)")


class ReferenceSummary(_Contract):
    """The run's reference, validated (or found validated) by ``helixflow.pipeline.reference``."""

    key: str
    etag: str = Field(description="the version validated; the Phase 2 job reads exactly this one")
    cache_prefix: str = Field(description="references/_cache/<etag>/: the verdict and the job's cached index")
    cached: bool = Field(description="the verdict came from the cache (this content was validated before)")
    contigs: list[str]
    lengths: list[int]


class ValidationSummary(_Contract):
    records: int
    bases: int
    paired: bool
    reports: list[dict[str, Any]]
    reference: ReferenceSummary | None = None
    versions: dict[str, str] = Field(default_factory=dict,
                                     description="tool -> version in the environment this stage ran in")


class PlacementPrediction(_Contract):
    """The planner's prediction for one placement of a stage."""

    placement: str
    seconds: float
    usd: float
    feasible: bool
    limit: str = Field("", description="why the placement cannot run the input (empty when it can)")
    workers: int = Field(1, description="functions in flight or cluster workers the prediction assumes")
    startup_seconds: float = 0.0


class Phase1Plan(_Contract):
    """Mashup placement of Phase 1 with the numbers behind it (they go into pipeline_info/params.json)."""

    placement: Literal["lambda", "ray"]
    reason: str
    input_bytes: int
    decompressed_mb: float
    compression_ratios: list[float] = Field(description="decompressed per stored byte of each input, sampled")
    validation: Literal["single", "distributed"] = Field(
        description="single: one Validate Lambda reads the inputs; distributed: each chunk runner validates its "
                    "records and ValidateChunks reports the first defect")
    validate_seconds: float = Field(description="predicted time of the single Validate")
    chunk_bytes: int
    expected_chunks: int
    lambda_seconds: float
    lambda_usd: float
    cluster_seconds: float
    cluster_usd: float
    objective: str = ""
    deadline_seconds: float = 0.0
    profile_version: str = ""
    predictions: list[PlacementPrediction] = Field(default_factory=list)


class Plan(_Contract):
    phase1: Phase1Plan


class Phase2Plan(_Contract):
    """Where Phase 2 (clustering, and alignment with a reference) runs, sized from Phase 1's read count."""

    placement: Literal["off", "slurm-cpu", "slurm-gpu"]
    reason: str
    reads: int
    ranks: int
    cpus_per_rank: int = Field(1, description="CPUs each rank asks Slurm for (its Numba threads)")
    time_limit_minutes: int
    embeddings_key: str = Field(description="Phase 1's embeddings Parquet the job reads (bucket key)")
    reads_keys: list[str] = Field(default_factory=list,
                                  description="Phase 1's trimmed FASTQ(s) the job reads with it (R1, R2)")
    reference: ReferenceSummary | None = Field(None, description="the reference FASTA: the job also aligns")
    predictions: list[PlacementPrediction] = Field(default_factory=list,
                                                   description="time and cost on each Slurm partition")


class Plan2(_Contract):
    phase2: Phase2Plan


class Phase2Summary(_Contract):
    """CollectPhase2's result: the job's summary.json and where its outputs wait for Publish."""

    outputs: list[str] = Field(description="paths relative to the results prefix")
    staged_prefix: str = Field(description="work/<sample>/<run>/phase2/: the job's out prefix")
    reads: int
    clusters: int
    ranks: int
    aligned_reads: int | None = None
    reference_index: Literal["built", "cached"] | None = Field(
        None, description="the job built the reference's minimizer index (and cached it) or read the cached one")
    job_id: str | None = None
    versions: dict[str, str] = Field(default_factory=dict,
                                     description="tool -> version in the environment this stage ran in")


class ReportSummary(_Contract):
    """BuildReport's result: the MultiQC report and its data folder, staged under work/ for Publish."""

    outputs: list[str] = Field(description="paths relative to the results prefix (multiqc_report.html, multiqc_data/...)")
    staged_prefix: str = Field(description="work/<sample>/<run>/report/")
    modules: list[str] = Field(description="MultiQC modules that found this run's files (fastp, Samtools, ...)")
    versions: dict[str, str] = Field(default_factory=dict,
                                     description="tool -> version in the environment this stage ran in")


class ChunkSet(_Contract):
    """SplitIntoChunks' result: the chunk manifest in S3 and the engine parameters resolved once per sample."""

    bucket: str
    manifest_key: str
    chunk_count: int
    params: dict[str, Any]


class MateScan(_Contract):
    """ScanMate's result (one ScanMates item): what one mate's pass found; the scan itself stays in work/."""

    mate: int
    records: int
    decompressed_bytes: int


class ChunkResult(_Contract):
    index: int
    result_key: str


class Publication(_Contract):
    manifest_key: str
    file_count: int


class CaughtError(BaseModel):
    """What a Catch puts into ResultPath: Step Functions' own field names."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    Error: str = "States.Runtime"
    Cause: str | None = None


class ScanFailure(BaseModel):
    """A ScanMates item whose scan failed: the error its Catch kept (CheckScans fails the run with it)."""

    model_config = ConfigDict(extra="forbid")

    failure: CaughtError


class MateCheck(_Contract):
    paired: bool


class BatchReportSummary(_Contract):
    """BatchReport's result: this sample's outcome recorded in its batch, and the batch report if it completed."""

    batch: str
    batch_id: str
    complete: bool = Field(description="every sample the sheet declared has an outcome")
    pending: list[str] = Field(description="declared samples without an outcome yet")
    failed: list[str] = Field(description="samples whose run failed (named in the batch report)")
    report_key: str | None = Field(None, description="the batch's multiqc_report.html, once complete")


class FailureRecord(_Contract):
    error_key: str
    code: str


class PipelineState(BaseModel):
    """The execution state between states. Slots fill as the run proceeds."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    execution_arn: str
    event: dict[str, Any]
    sample: SampleRequest | None = None
    validation: ValidationSummary | None = None
    mate_check: MateCheck | None = None
    plan: Plan | None = None
    scans: list[MateScan | ScanFailure] | None = None
    chunks: ChunkSet | None = None
    phase1_job: JobHandle | None = None
    phase2_job: JobHandle | None = None
    phase1: Phase1Summary | None = None
    plan2: Plan2 | None = None
    phase2: Phase2Summary | None = None
    report: ReportSummary | None = None
    publication: Publication | None = None
    failure: CaughtError | None = None
    failure_record: FailureRecord | None = None
    record_failure_error: CaughtError | None = None
    batch_report: BatchReportSummary | None = None
    batch_report_error: CaughtError | None = None

    def require_sample(self) -> SampleRequest:
        if self.sample is None:
            raise ValueError("the state has no sample request yet")
        return self.sample


class ChunkItem(BaseModel):
    """One Distributed Map item (the Map's ItemSelector)."""

    model_config = ConfigDict(extra="forbid")

    item: dict[str, Any]
    sample: SampleRequest
    params: dict[str, Any]


class MateScanItem(BaseModel):
    """One ScanMates item (the Map's ItemSelector): which input to scan, and the execution state."""

    model_config = ConfigDict(extra="forbid")

    scan_mate: int = Field(ge=0, le=1, description="index of the input in sample.inputs")
    state: PipelineState


# Task state name -> (the model it returns, the PipelineState slot its ResultPath fills).
TASK_RESULTS: dict[str, tuple[type[BaseModel], str | None]] = {
    "ResolveSample": (SampleRequest, "sample"),
    "CheckMate": (MateCheck, "mate_check"),
    "Validate": (ValidationSummary, "validation"),
    "ValidateChunks": (ValidationSummary, "validation"),
    "PlanPhase1": (Plan, "plan"),
    "ScanMate": (MateScan, None),
    "SplitIntoChunks": (ChunkSet, "chunks"),
    "ProcessChunk": (ChunkResult, None),
    "SubmitPhase1Job": (JobHandle, "phase1_job"),
    "PollPhase1Job": (JobHandle, "phase1_job"),
    "MergeChunks": (Phase1Summary, "phase1"),
    "PlanPhase2": (Plan2, "plan2"),
    "SubmitPhase2Job": (JobHandle, "phase2_job"),
    "PollPhase2Job": (JobHandle, "phase2_job"),
    "CollectPhase2": (Phase2Summary, "phase2"),
    "BuildReport": (ReportSummary, "report"),
    "Publish": (Publication, "publication"),
    "RecordFailure": (FailureRecord, "failure_record"),
    "BatchReport": (BatchReportSummary, "batch_report"),
}


class StageRequest(BaseModel):
    """The SubmitJob / PollJob payload: which cluster stage, and the execution state."""

    model_config = ConfigDict(extra="forbid")

    stage: Literal["phase1", "phase2"]
    state: PipelineState
