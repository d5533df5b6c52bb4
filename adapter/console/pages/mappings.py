"""映射 Mappings: each source with its mapping folder, the last check of the mapping
folders and the last run of the golden cases (run here on request, as ``adapter mappings
check`` / ``adapter mappings test`` do: they translate only, nothing is stored). The last
results, with who ran them and when, are kept in a small file of this host
(``<ADAPTER_DATA_DIR>/console/mappings-last-run.json``): they survive a restart. A file,
not a table: the mapping folders are this host's files too, so the result is this host's."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from adapter.api.facility import own_facility
from adapter.console.access import current_session
from adapter.console.render import SECURITY_HEADERS, page
from adapter.errors import AdapterError, MappingDefinitionError
from adapter.input_limits import InputLimits
from adapter.mapping.golden import find_cases, run_case
from adapter.mapping.loader import SHARED, load_mapping_set

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)
LAST_RUN = Path("console") / "mappings-last-run.json"


@dataclass
class Run:
    at: datetime
    by: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.rows if not r["ok"])

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "by": self.by, "rows": self.rows}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Run:
        return cls(datetime.fromisoformat(data["at"]), str(data["by"]), list(data["rows"]))


def last_run_file(request: Request) -> Path:
    return Path(request.app.state.settings.data_dir) / LAST_RUN


def _last(request: Request) -> dict[str, Run]:
    """The last runs: this process's, else the file's (written by an earlier process)."""
    state = request.app.state
    if not hasattr(state, "console_mappings"):
        state.console_mappings = read_last(last_run_file(request))
    return state.console_mappings


def read_last(path: Path) -> dict[str, Run]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {key: Run.from_json(value) for key, value in data.items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:  # unreadable: start afresh
        log.warning("the last mapping check in %s is unreadable (%s); ignored", path, exc)
        return {}


def write_last(path: Path, runs: dict[str, Run]) -> None:
    """Atomically (a half-written file is never read): a temporary file, then a rename."""
    text = json.dumps({k: r.as_json() for k, r in runs.items()}, ensure_ascii=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except OSError as exc:  # kept in memory: the page still shows it until a restart
        log.warning("cannot keep the last mapping check in %s: %s", path, exc)


def check_folders(request: Request) -> list[dict[str, Any]]:
    root = request.app.state.settings.mappings_dir
    folders = [
        SHARED,
        *sorted(
            {s.mapping for f in request.app.state.consortium.facilities for s in f.sources}
            - {SHARED}
        ),
    ]
    rows = []
    for folder in folders:
        try:
            loaded = load_mapping_set(root, folder)
            rows.append({"name": folder, "ok": True, "text": f"{len(loaded.files)}"})
        except MappingDefinitionError as exc:
            rows.append({"name": folder, "ok": False, "text": exc.message})
    return rows


def run_golden(request: Request) -> list[dict[str, Any]]:
    from adapter.pipeline import Translator

    settings = request.app.state.settings
    cases, broken = find_cases(settings.config.parent)
    rows = [{"name": line, "ok": False, "text": line} for line in broken]
    if not cases:
        return rows
    translator = Translator(
        request.app.state.consortium,
        mappings_dir=settings.mappings_dir,
        max_bytes=settings.max_message_bytes,
        default_timezone=settings.default_timezone,
        original_inline_max_bytes=settings.original_inline_max_bytes,
        limits=InputLimits.from_settings(settings),
    )
    for case in cases:
        try:
            result = run_case(case, translator.translate)
            rows.append(
                {"name": result.label, "ok": result.ok, "text": "; ".join(result.lines[:3])}
            )
        except AdapterError as exc:
            rows.append({"name": case.label, "ok": False, "text": exc.message})
    return rows


@router.get("/console/mappings", name="console_mappings", response_class=HTMLResponse)
def console_mappings(request: Request) -> HTMLResponse:
    facility = own_facility(request)
    sources = [
        {
            "facility": f.name,
            "id": s.id,
            "format": s.format,
            "mapping": s.mapping,
            "description": s.description or "",
        }
        for f in request.app.state.consortium.facilities
        if facility is None or f.id == facility
        for s in f.sources
    ]
    last = _last(request)
    return page(
        request,
        "mappings.html",
        active="mappings",
        sources=sources,
        check=last.get("check"),
        golden=last.get("golden"),
        root=request.app.state.settings.mappings_dir,
    )


@router.post("/console/mappings/run", name="console_mappings_run")
async def console_mappings_run(request: Request) -> Response:
    """Check every mapping folder and run the golden cases now."""
    by = current_session(request).client
    check = await run_in_threadpool(check_folders, request)
    golden = await run_in_threadpool(run_golden, request)
    now = datetime.now(UTC)
    last = _last(request)
    last.update({"check": Run(now, by, check), "golden": Run(now, by, golden)})
    await run_in_threadpool(write_last, last_run_file(request), dict(last))
    return RedirectResponse("/console/mappings", status_code=303, headers=SECURITY_HEADERS)
