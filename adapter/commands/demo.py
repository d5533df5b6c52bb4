"""``adapter demo``: the consortium's story on the embedded default (README "Two commands").

1. the example consortium's sample lab results (fixtures/hl7v2/oru, 26 messages);
2. one patient's referral loop, 张秀英 (fixtures/demo/README.md): her blood count at the
   石桥 township centre, the township's up-referral slip to the county hospital, the county
   accepting it, her admission, a blood count at the county (the result goes back to the
   township that follows her: 结果回传基层), her discharge, the discharge summary and the
   down-referral slip back to 石桥;
3. a recognition query (互认): at her admission, which of her earlier results the county
   hospital may recognise instead of repeating the test;
4. every delivery written to a file-drop folder per destination under ``./out/`` (the
   consortium's destinations are replaced by folders for the demo: nothing is sent);
5. where to open the console.

Run it again: every message is recognised as already received, nothing is stored twice.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from adapter.commands import common

OUT = Path("out")
STORY_FILE = Path("demo") / "story.yaml"  # under the consortium file's folder (fixtures/)


@dataclass(frozen=True)
class Step:
    say: str  # what happens, for the reader
    source: str
    path: str  # under the consortium file's folder (fixtures/)
    role: str | None = None  # what the demo reads back from this step
    accept: bool = False  # the receiver accepts the referral this step makes


@dataclass(frozen=True)
class Story:
    receiver: str  # facility ids of the consortium file
    sender: str
    accepted_at: datetime
    admitted_at: datetime
    steps: tuple[Step, ...]

    def made_by(self, made: dict[str, list[str]], role: str, kind: str) -> str:
        step = next(s for s in self.steps if s.role == role)
        return _one(made[step.path], kind)


def load_story(fixtures: Path) -> Story | None:
    """The story beside the consortium file (fixtures/demo/story.yaml); None without one."""
    path = fixtures / STORY_FILE
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return Story(
        receiver=data["receiver"],
        sender=data["sender"],
        accepted_at=datetime.fromisoformat(data["accepted_at"]),
        admitted_at=datetime.fromisoformat(data["admitted_at"]),
        steps=tuple(Step(**step) for step in data["steps"]),
    )


def file_drop_consortium(config: Path, out: Path, target: Path) -> Path:
    """The consortium file with each destination replaced by an enabled folder
    ``<out>/<destination id>`` (created when first written)."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    for facility in data.get("facilities") or []:
        for destination in facility.get("destinations") or []:
            destination["kind"] = "file"
            destination["enabled"] = True
            destination["settings"] = {
                "path": str((out / destination["id"]).resolve()),
                "create_directory": True,
            }
    target.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
    return target


def demo(
    folder: Annotated[
        Path | None,
        typer.Option(help="Folder whose sub-folders are named after source systems (lab only)"),
    ] = None,
    out: Annotated[Path, typer.Option(help="Where the deliveries are written")] = OUT,
) -> None:
    """The consortium's story: lab results, a referral up and back down with its results,
    the discharge summary, a recognition query, deliveries to folders under ./out/."""
    from adapter.consortium import load_consortium
    from adapter.errors import AdapterError

    chosen = common.settings()
    root = folder or chosen.config.parent / "hl7v2" / "oru"
    try:
        load_consortium(chosen.config)  # its mistakes are named in the file itself
    except AdapterError as exc:
        raise common.cannot_start(exc.message) from None
    if not root.is_dir():
        typer.secho(f"{root} is not a folder", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    with tempfile.TemporaryDirectory(prefix="adapter-demo-") as scratch:
        config = file_drop_consortium(chosen.config, out, Path(scratch) / chosen.config.name)
        catalogue = chosen.recognition_catalogue
        if catalogue is None and (chosen.config.parent / "recognition.yaml").is_file():
            catalogue = chosen.config.parent / "recognition.yaml"  # beside the original
        settings = chosen.model_copy(update={"config": config, "recognition_catalogue": catalogue})
        runtime = common.start(chosen=settings)
        try:
            typer.echo(f"database: {common.safe_url(settings.database_url)}")
            totals = _lab_results(runtime, root)
            results: dict[str, str] = {}
            story = load_story(chosen.config.parent) if folder is None else None
            if story is not None and _has_story_sources(runtime, story):
                results = _story(runtime, story, chosen.config.parent)
            _deliver(runtime, out, results)
        finally:
            runtime.close()
    summary = ", ".join(f"{n} {s}" for s, n in sorted(totals.items()))
    typer.echo(f"\n{sum(totals.values())} messages: {summary}")
    typer.echo(
        "Read them back: ADAPTER_AUTH=off adapter serve (a local trial; with authentication: "
        "docs/security.md), then GET http://127.0.0.1:8080/fhir/Patient"
    )
    typer.echo(
        "The console: open http://127.0.0.1:8080/console/ (docs/console.md): 转诊 shows the "
        "referrals, the 台账 and the quarterly analysis; 投递 the deliveries above"
    )


def _lab_results(runtime: Any, root: Path) -> Counter[str]:
    from adapter.commands.messages import _print_result
    from adapter.pipeline import Channel, Receipt

    known = {s.id for f in runtime.consortium.facilities for s in f.sources}
    totals: Counter[str] = Counter()
    for source_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name in known):
        for path in sorted(source_dir.glob("*.hl7")):
            receipt = Receipt(source_dir.name, Channel.CLI, peer=path.name)
            result = runtime.pipeline.ingest(path.read_bytes(), receipt)
            _print_result(f"{source_dir.name}/{path.name}", result)
            totals[result.status] += 1
    return totals


def _has_story_sources(runtime: Any, story: Story) -> bool:
    known = {s.id for f in runtime.consortium.facilities for s in f.sources}
    facilities = {f.id for f in runtime.consortium.facilities}
    return {s.source for s in story.steps} <= known and {story.receiver, story.sender} <= facilities


def _story(runtime: Any, story: Story, fixtures: Path) -> dict[str, str]:
    from adapter.pipeline import Channel, Receipt

    typer.secho("\n== 一位患者的双向转诊 (张秀英) ==", bold=True)
    made: dict[str, list[str]] = {}
    for number, step in enumerate(story.steps, start=1):
        path = fixtures / step.path
        result = runtime.pipeline.ingest(path.read_bytes(), Receipt(step.source, Channel.CLI))
        note = " (already received)" if result.duplicate else ""
        kinds = Counter(r.split("/", 1)[0] for r in result.resources)
        produced = ", ".join(f"{n} {t}" for t, n in sorted(kinds.items())) or "nothing"
        colour = typer.colors.GREEN if result.accepted else typer.colors.RED
        typer.secho(f"{number}. {step.say}: {result.status}{note} -> {produced}", fg=colour)
        for issue in result.issues:
            text = str(issue.diagnostics)
            if issue.severity != "information" or "referral" in text or "Task" in text:
                typer.echo(f"   {text}")
        made[step.path] = list(result.resources)
        if step.accept:
            _accept(runtime, story, _one(made[step.path], "Task"))
    up = story.made_by(made, "up-slip", "Task")
    down = story.made_by(made, "down-slip", "Task")
    typer.secho("\n== 转诊状态 ==", bold=True)
    for name, task in (("上转 (石桥 -> 县医院)", up), ("下转 (县医院 -> 石桥)", down)):
        typer.echo(f"{name}: {_state(runtime, task)}")
    patient = story.made_by(made, "admission", "Patient")
    _recognition(runtime, story, patient)
    return {
        "township result": story.made_by(made, "sender-result", "DiagnosticReport"),
        "county result": story.made_by(made, "receiver-result", "DiagnosticReport"),
    }


def _one(resources: list[str], kind: str) -> str:
    return next(r for r in resources if r.startswith(f"{kind}/")).split("/", 1)[1]


def _accept(runtime: Any, story: Story, task: str) -> None:
    """The county hospital accepts the referral (as ``adapter referrals accept`` does)."""
    from adapter.referral.apply import RefusedError, apply_change, audit_change
    from adapter.referral.machine import Change

    now = datetime.now(UTC)
    try:
        with runtime.factory.begin() as session:
            applied = apply_change(
                session,
                runtime.consortium,
                task,
                Change("accepted", at=story.accepted_at),
                story.receiver,
                now=now,
                step_at=story.accepted_at,
            )
            if applied.changed:
                audit_change(
                    session, task, story.receiver, at=now, applied=applied, interaction="cli"
                )
        word = "同意接收" if applied.changed else "已同意 (unchanged)"
    except RefusedError:  # a second run: the referral has moved on already
        word = "已在后续状态 (unchanged)"
    typer.secho(f"   县医院 {word}: Task/{task}", fg=typer.colors.GREEN)


def _state(runtime: Any, task_id: str) -> str:
    from adapter.store import read_resource

    with runtime.factory() as session:
        task = read_resource(session, "Task", task_id) or {}
    business = (task.get("businessStatus") or {}).get("text", "已申请")
    outputs = [o["valueReference"]["reference"] for o in task.get("output") or []]
    listed = f", output {', '.join(outputs)}" if outputs else ""
    return f"Task/{task_id} {task.get('status')} / {business}{listed}"


def _recognition(runtime: Any, story: Story, patient: str) -> None:
    from adapter.recognition.query import WHY, Question, ask, zone_of

    catalogue = runtime.recognition
    typer.secho("\n== 检查检验结果互认 (入院时, 县医院) ==", bold=True)
    if catalogue is None:
        typer.echo("no recognition catalogue (docs/recognition.md): skipped")
        return
    admitted, county = story.admitted_at, story.receiver
    question = Question(patient, admitted, facility_id=county, setting="inpatient")
    with runtime.factory() as session:
        answers = ask(session, catalogue, runtime.consortium, question)
    zone = zone_of(runtime.consortium)
    typer.echo(
        f"Patient/{patient} as at {admitted.astimezone(zone).isoformat()} "
        f"(adapter recognition query {patient} --facility {county} --setting inpatient "
        f"--at {admitted.isoformat()})"
    )
    names = {f.id: f.name for f in runtime.consortium.facilities}
    for answer in answers:
        name = answer.item.name if answer.item else answer.asked
        usable = answer.recognisable
        if usable:
            best = usable[0]
            last = (best.expires - timedelta(seconds=1)).astimezone(zone) if best.expires else None
            typer.echo(
                f"  {name}: 可互认 ({names.get(best.facility_id or '', best.facility_id)}, "
                f"through {last.date() if last else '?'})"
            )
        else:
            typer.echo(f"  {name}: 不可互认 ({WHY.get(answer.reason or '', answer.reason)})")


def _deliver(runtime: Any, out: Path, results: dict[str, str]) -> None:
    from adapter.delivery.service import build_worker

    worker = build_worker(runtime.consortium, runtime.factory)
    try:
        worker.drain()
    finally:
        worker.close()
    typer.secho(f"\n== 投递 (file drops under {out}/) ==", bold=True)
    for _, destination in runtime.consortium.destinations():
        folder = out / destination.id
        files = sorted(folder.glob("*.json")) if folder.is_dir() else []
        kinds = Counter(f.name.split("-", 1)[0] for f in files)
        listed = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "nothing"
        typer.echo(f"{folder}/: {len(files)} files ({listed})")
        for what, report in results.items():
            if (folder / f"DiagnosticReport-{report}.json").is_file():
                typer.echo(f"  张秀英's {what}: DiagnosticReport-{report}.json")


def register(app: typer.Typer) -> None:
    app.command()(demo)
