"""The console's pages and their JSON, a Starlette app over a Reader. Only GET routes: it changes nothing."""

from __future__ import annotations

import html
import json
import mimetypes
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from helixflow_local.asl import Machine
from helixflow_local.console.graph import GraphvizMissing, state_graph, status_class
from helixflow_local.console.reader import Reader, now
from helixflow_local.history import NOT_RUN, STATUSES, RunHistory, duration_s

HERE = Path(__file__).parent
EVENTS_PER_PAGE = 25
POLL_MS = 1000
# The page loads its script and style from this server alone and connects nowhere else.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'")
STATUS_FILTERS = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" if value < 120 else f"{int(value // 60)} min {value % 60:02.0f} s"


def _when(value: Any) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def state_statuses(machine: Machine, history: RunHistory) -> dict[str, str]:
    """Every state's status in this execution. The Distributed Map's child executions keep their events out of
    the parent's history (in AWS too): the states inside the Map take the Map's status."""
    statuses = {name: NOT_RUN for name in machine.types}
    statuses.update({name: state.status for name, state in history.states.items() if name in statuses})
    for name, parent in machine.parent.items():
        if parent is not None and statuses[name] == NOT_RUN:
            statuses[name] = statuses[parent]
    return statuses


def event_row(event: dict[str, Any], started: Any) -> dict[str, Any]:
    details = next((v for k, v in event.items() if k.endswith("EventDetails")), {}) or {}
    name = (event.get("stateEnteredEventDetails") or event.get("stateExitedEventDetails") or {}).get("name", "")
    summary = details.get("error") or details.get("resource") or details.get("mapRunArn", "")
    if details.get("cause"):
        summary = f"{summary}: {details['cause'][:160]}"
    return {"id": event["id"], "type": event["type"], "state": name, "when": _when(event["timestamp"]),
            "offset": _seconds(duration_s(started, event["timestamp"], now())) if started else "-",
            "summary": summary, "details": json.dumps(details, indent=2, default=str) if details else "",
            "failed": "Failed" in event["type"] or "TimedOut" in event["type"] or "Aborted" in event["type"]}


def create_app(reader: Reader, *, local_logs: str | None = None) -> Starlette:
    """``local_logs``: where the local stack's Lambda logs are on disk, said on the page when the endpoint's
    CloudWatch Logs has no group for a function."""
    templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    templates.globals.update(seconds=_seconds, when=_when, status_class=status_class, status_names=STATUSES,
                             poll_ms=POLL_MS)

    def page(template: str, **context: Any) -> HTMLResponse:
        return HTMLResponse(templates.get_template(template).render(**context),
                            headers={"Content-Security-Policy": CSP})

    def loaded(name: str) -> tuple[dict[str, Any], RunHistory]:
        try:
            described = reader.describe(name)
        except reader.sfn.exceptions.ExecutionDoesNotExist:
            raise HTTPException(404, f"no execution {name}") from None
        return described, reader.history(described["executionArn"])

    def executions(request: Request) -> HTMLResponse:
        status = request.query_params.get("status") or None
        sample = request.query_params.get("sample") or None
        if status is not None and status not in STATUS_FILTERS:
            raise HTTPException(400, f"status must be one of {', '.join(STATUS_FILTERS)}")
        rows = reader.executions(status=status, sample=sample)
        template = "execution_rows.html" if request.query_params.get("fragment") else "executions.html"
        return page(template, rows=rows, now=now(), status=status or "", sample=sample or "",
                    status_filters=STATUS_FILTERS)

    def status_document(name: str) -> dict[str, Any]:
        described, history = loaded(name)
        machine = reader.machine()
        items = reader.map_items(history)
        return {
            "name": name, "status": described["status"], "error": history.error,
            "duration": _seconds(duration_s(described["startDate"], described.get("stopDate"), now())),
            "current": history.current, "events": history.events,
            "states": {n: {"status": s, "class": status_class(s)} for n, s in state_statuses(machine, history).items()},
            "map": ({"state": history.map_state, "done": items.done, "total": items.total} if items else None),
            "jobs": [vars(job) for job in history.jobs.values()],
        }

    def execution(request: Request) -> HTMLResponse:
        name = request.path_params["name"]
        described, history = loaded(name)
        definition = reader.definition()
        machine = reader.machine()
        statuses = state_statuses(machine, history)
        manifest = reader.manifest(history) if described["status"] == "SUCCEEDED" else None
        error_document = reader.error_document(history) if described["status"] == "FAILED" else None
        try:
            graph = state_graph(definition, statuses)
        except GraphvizMissing as missing:  # the rest of the page still says what happened
            graph = f'<p class="missing">{html.escape(str(missing))}</p>'
        return page("execution.html", name=name, described=described, history=history, now=now(), graph=graph,
                    machine=machine, statuses=statuses,
                    map_items=reader.map_items(history), map_runs=reader.map_runs(described["executionArn"]),
                    manifest=manifest, error_document=error_document,
                    events=_events_page(name, described, 1),
                    duration=_seconds(duration_s(described["startDate"], described.get("stopDate"), now())))

    def _events_page(name: str, described: dict[str, Any], number: int) -> dict[str, Any]:
        events = reader.events(described["executionArn"])
        pages = max(1, -(-len(events) // EVENTS_PER_PAGE))
        number = min(max(1, number), pages)
        shown = events[(number - 1) * EVENTS_PER_PAGE:number * EVENTS_PER_PAGE]
        return {"rows": [event_row(e, described["startDate"]) for e in shown], "page": number, "pages": pages,
                "total": len(events), "name": name}

    def events_fragment(request: Request) -> HTMLResponse:
        name = request.path_params["name"]
        described, _ = loaded(name)
        try:
            number = int(request.query_params.get("page", "1"))
        except ValueError:
            raise HTTPException(400, "page must be a number") from None
        return page("events.html", events=_events_page(name, described, number))

    def state_detail(request: Request) -> JSONResponse:
        name, state_name = request.path_params["name"], request.path_params["state"]
        _, history = loaded(name)
        state = history.states.get(state_name)
        if state is None:
            return JSONResponse({"state": state_name, "status": NOT_RUN})
        return JSONResponse({"state": state.name, "status": state.status, "visits": state.visits,
                             "attempts": state.attempts, "error": state.error, "cause": state.cause,
                             "entered": _when(state.entered), "exited": _when(state.exited),
                             "input": _pretty(state.input), "output": _pretty(state.output)})

    def logs_fragment(request: Request) -> HTMLResponse:
        name = request.path_params["name"]
        _, history = loaded(name)
        found = reader.log_lines(history, name, reader.definition())
        return page("logs.html", logs=found, local_logs=local_logs)

    def job_logs_fragment(request: Request) -> HTMLResponse:
        """Each cluster job's log tail (escaped by the template, the last JOB_LOG_LINES lines)."""
        _, history = loaded(request.path_params["name"])
        jobs = [(job, reader.job_logs.tail(job) if reader.job_logs else None) for job in history.jobs.values()]
        return page("job_logs.html", jobs=jobs)

    def run_object(request: Request) -> Response:
        """An object the run wrote (manifest, report, error.json), from its own results/ or errors/ prefix only."""
        name, kind, path = request.path_params["name"], request.path_params["kind"], request.path_params["path"]
        _, history = loaded(name)
        prefix = {"results": history.results_prefix, "errors": history.errors_prefix}.get(kind)
        if kind not in ("results", "errors") or prefix is None or any(part in ("", ".", "..")
                                                                     for part in path.split("/")):
            raise HTTPException(404, "not an object of this run")
        body = reader.object(prefix + path)
        if body is None:
            raise HTTPException(404, f"s3://{reader.bucket}/{prefix}{path} does not exist")
        media = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return Response(body, media_type=media if not media.startswith("text/") else media + "; charset=utf-8")

    routes = [
        Route("/", executions),
        Route("/executions/{name}", execution),
        Route("/executions/{name}/events", events_fragment),
        Route("/executions/{name}/logs", logs_fragment),
        Route("/executions/{name}/job-logs", job_logs_fragment),
        Route("/executions/{name}/{kind:str}/{path:path}", run_object),
        Route("/api/executions/{name}", lambda request: JSONResponse(status_document(request.path_params["name"]))),
        Route("/api/executions/{name}/states/{state}", state_detail),
        Route("/favicon.ico", lambda request: Response(status_code=204)),  # browsers ask; there is none
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes)


def _pretty(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return json.dumps(json.loads(text), indent=2)
    except ValueError:
        return text
