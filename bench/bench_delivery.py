"""Benchmark: resources/second delivered by the worker to a loopback FHIR server (Medplum,
in memory), by 1 and by 4 workers, against that server's own capacity and a naive sender.

    .venv/bin/python bench/bench_delivery.py [--copies 6] [--batch 20] [--pg URL | --no-pg]

Input: every ORU fixture under fixtures/hl7v2/oru, each copy made unique as in
bench_ingest.py (message id, order and specimen numbers) and with its patient made unique
too (a new valid resident ID number, local numbers suffixed), so the queue holds many
patients as a real feed does; the worker claims one row per patient at a time. The example
consortium is used with one FHIR destination switched on, pointed at the server, and every
facility routed to it. The outbox is filled by Pipeline.ingest (not timed).

Rows (the server is emptied before each):
  worker x1 SQLite      one worker process on a temporary SQLite file (SQLite takes one)
  worker x1 PostgreSQL  one worker process, a temporary schema
  worker x4 PostgreSQL  four worker processes on one queue (FOR UPDATE SKIP LOCKED)
  capacity              the bundles the SQLite worker sent (same entries, same grouping),
                        POSTed by a plain kept-alive httpx.Client; and by 4 in threads
  naive                 one PUT per resource, a new connection each (httpx.put)
Worker rows are timed from the moment the started processes are told to go until the
last one has found the queue empty; resources/s counts distinct resources (an outbox row
for an older version of a resource is delivered with the newer one: coalesced).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import Fixture, load_fixtures, variant
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from adapter.consortium import load_consortium
from adapter.identity import national_id_check_char
from adapter.outbound.bundle import outgoing
from adapter.pipeline.receipt import Receipt
from adapter.runtime import make_pipeline
from adapter.settings import Settings
from adapter.store import make_engine, migrate, read_resource
from adapter.store import session_factory as make_session_factory
from adapter.store.models import Outbox

ROOT = Path(__file__).resolve().parent.parent
MEDPLUM_DIR = ROOT / "tests" / "tools" / "medplum"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# ``enqueue.order_hash`` of "Patient/p<n>" in PostgreSQL's SQL (as migration 0035 has it)
PG_ORDER_HASH = (
    "('x' || left(encode(sha256(convert_to('Patient/p' || {}, 'UTF8')), 'hex'), 16))"
    "::bit(64)::bigint"
)
DEST = "county-hospital-fhir"
WORKER_TIMEOUT = 150.0


# -- the FHIR server ----------------------------------------------------------------------------


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen[str]

    def control(self, method: str, path: str) -> Any:
        answer = httpx.request(method, self.base_url.removesuffix("/fhir") + path, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def reset(self) -> None:
        self.control("POST", "/$reset")

    def requests(self) -> list[dict[str, Any]]:
        return self.control("GET", "/$requests")

    def count(self, resource_type: str) -> int:
        answer = httpx.get(f"{self.base_url}/{resource_type}?_summary=count", timeout=30)
        return int(answer.json()["total"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_medplum() -> Server:
    """The test peer of tests/tools/medplum (npm ci first when its packages are missing)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise SystemExit("needs Node.js >= 20 with npm for the Medplum test server")
    if not (MEDPLUM_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=MEDPLUM_DIR, check=True, capture_output=True
        )
    process = subprocess.Popen(
        [node, "server.mjs", "--host", "127.0.0.1", "--port", "0"],
        cwd=MEDPLUM_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    address = _listening(process, "the Medplum server")
    assert process.stdout is not None
    threading.Thread(target=process.stdout.read, daemon=True).start()  # keep the pipe empty
    return Server(address, process)


@dataclass
class Sink:
    """tests/tools/fhir_sink.py: ``processes`` pre-forked processes answering every Bundle
    200 per entry, each entry logged to a file (counted: what arrived, how often)."""

    base_url: str
    process: subprocess.Popen[str]
    logs: Path

    def reset(self) -> None:
        for log in self.logs.glob("*.log"):
            log.open("w").close()

    def received(self) -> list[str]:
        return [
            line.split(" ", 1)[0]
            for log in self.logs.glob("*.log")
            for line in log.read_text().splitlines()
        ]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        if int(raw[raw.rindex(")") + 2 :].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def start_sink(processes: int, logs: Path, delay_ms: float = 0.0) -> Sink:
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "tests" / "tools" / "fhir_sink.py"),
            "--processes",
            str(processes),
            "--log",
            str(logs),
            "--delay-ms",
            str(delay_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    return Sink(_listening(process, "the sink"), process, logs)


def _listening(process: subprocess.Popen[str], what: str) -> str:
    """The address a started server prints first (``listening <address>``)."""
    assert process.stdout is not None
    first = process.stdout.readline().strip()
    if not first.startswith("listening "):
        process.kill()
        raise SystemExit(f"{what} did not start: {first}")
    return first.split(" ", 1)[1]


# -- input: fixtures made unique, patients included ---------------------------------------------

_NATIONAL = re.compile(r"[0-9]{17}[0-9X]|[0-9]{15}")


class Patients:
    """A new, valid resident ID number per copy of a patient (same region prefix, birth
    date and sex digit parity; new sequence and check character), in PID-3 and PID-19.
    With ``spread_births`` the birth date changes too (PID-7 and the ID's date, spread over
    80 years), also for a PID carrying no national ID: the patient index blocks records by
    birth date and surname, and copies that keep the fixture's birth date would put hundreds
    of persons in one block (a look-alike block: possible matches with every earlier copy)."""

    def __init__(self, *, spread_births: bool = False) -> None:
        self.serial = 0
        self.spread_births = spread_births
        self.birth: str | None = None  # the birth date of the copy being made

    def national(self, old: str) -> str:
        self.serial += 1
        birth = old[6:14] if len(old) == 18 else "19" + old[6:12]
        if self.spread_births:
            birth = self._spread_birth()
        self.birth = birth
        parity = int(old[16] if len(old) == 18 else old[14]) % 2
        region = old[:4] + f"{self.serial // 500 % 100:02d}"
        first17 = f"{region}{birth}{(self.serial % 500) * 2 + parity:03d}"
        return first17 + national_id_check_char(first17)

    def _spread_birth(self) -> str:
        day = date(1930, 1, 1) + timedelta(days=self.serial * 7919 % 29000)
        return day.strftime("%Y%m%d")

    def unique(self, raw: bytes, codec: str, tag: str) -> bytes:
        lines = raw.decode(codec).split("\r")
        fs, comp, rep = lines[0][3], lines[0][4], lines[0][5]
        for n, line in enumerate(lines):
            fields = line.split(fs)
            if fields[0] != "PID" or len(fields) <= 3:
                continue
            self.birth = None
            made: dict[str, str] = {}  # old ID -> new, so PID-19 carries PID-3's new ID
            reps = []
            for repetition in fields[3].split(rep):
                parts = repetition.split(comp)
                if _NATIONAL.fullmatch(parts[0]):
                    made[parts[0]] = parts[0] = self.national(parts[0])
                elif parts[0]:
                    parts[0] += tag
                reps.append(comp.join(parts))
            fields[3] = rep.join(reps)
            if len(fields) > 19 and _NATIONAL.fullmatch(fields[19]):
                fields[19] = made.get(fields[19]) or self.national(fields[19])
            birth = fields[7][:8] if len(fields) > 7 else ""
            if self.spread_births and self.birth is None and birth.isdigit():
                # no national ID to renew: a new patient still gets a birth date of their own
                # (copies keeping the fixture's name, birth date and phone under new record
                # numbers are one look-alike block that grows with the night)
                self.serial += 1
                self.birth = self._spread_birth()
            # a placeholder (00000000) stays a placeholder
            if self.spread_births and self.birth and birth.isdigit() and birth != "00000000":
                fields[7] = self.birth + fields[7][8:]
            lines[n] = fs.join(fields)
        return "\r".join(lines).encode(codec)


def messages(
    fixtures: list[Fixture], copies: int, prefix: str, patients: Patients
) -> list[tuple[str, bytes]]:
    out = []
    for n in range(copies):
        for f in fixtures:
            tag = f"{prefix}{n}"
            out.append((f.source, patients.unique(variant(f, tag), f.codec, tag)))
    return out


def write_config(path: Path, base_url: str, batch: int) -> Path:
    """The example consortium with one FHIR destination on, every facility routed to it."""
    data = yaml.safe_load((ROOT / "fixtures" / "consortium.yaml").read_text(encoding="utf-8"))
    for facility in data["facilities"]:
        for destination in facility.get("destinations") or []:
            destination["enabled"] = destination["id"] == DEST
            if destination["id"] == DEST:
                destination["settings"].update(
                    base_url=base_url,
                    bundle="transaction",
                    batch_size=max(batch, 1),
                    timeout_seconds=60,
                )
    data["routes"] = [
        {
            "from": ["*"],
            "to": [DEST],
            "resource_types": ["Patient", "DiagnosticReport", "Observation", "Specimen"],
        }
    ]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


# -- databases ----------------------------------------------------------------------------------


@dataclass
class Database:
    label: str
    url: str
    drop: Callable[[], None]


def sqlite_database(tmp: Path, name: str) -> Database:
    return Database("SQLite", f"sqlite:///{tmp / name}", lambda: None)


def postgres_database(url: str) -> Database | str:
    try:
        admin = make_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 3})
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        return f"not reachable at {make_url(url).render_as_string()}: {type(exc).__name__}"
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    return Database("PostgreSQL", scoped.render_as_string(hide_password=False), drop)


def fill(
    database: Database, config: Path, batch: list[tuple[str, bytes]], *, analyze: bool = True
) -> int:
    """Ingest the messages (not timed); the number of outbox rows written.

    PostgreSQL: then ANALYZE the tables the worker reads, as autovacuum does within a minute
    on a running server. Without statistics the planner takes the just-filled outbox for
    empty and runs the claim's "no earlier row of this patient" test as a nested loop over
    the whole queue (~100-200 ms a claim for 1,000 rows, quadratic); ``--no-analyze``
    measures that case."""
    engine = make_engine(database.url)
    try:
        migrate(engine)
        settings = Settings(config=config, database_url=database.url)
        pipeline = make_pipeline(settings, load_consortium(config), make_session_factory(engine))
        for source, raw in batch:
            result = pipeline.ingest(raw, Receipt(source, "cli"))
            if not result.accepted or result.duplicate:
                raise SystemExit(f"bench input was not accepted: {result.as_dict()}")
        if analyze and engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("ANALYZE outbox, resource, delivery_destination"))
        return outbox_states(engine).get("pending", 0)
    finally:
        engine.dispose()


def outbox_states(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(Outbox.state, func.count()).group_by(Outbox.state)).all())


# -- the worker rows ----------------------------------------------------------------------------


def child(url: str, config: Path, batch: int) -> None:
    """One worker process: get ready, wait for "go" on stdin, deliver until the queue is
    empty, print the time it finished."""
    import logging

    logging.disable(logging.WARNING)
    from adapter.delivery.service import build_worker, start_exclusive
    from adapter.delivery.worker import WorkerOptions

    engine = make_engine(url)
    factory = make_session_factory(engine)
    lock = start_exclusive(engine, factory)  # SQLite: this must be the only worker
    worker = build_worker(load_consortium(config), factory, options=WorkerOptions(batch_size=batch))
    active = (
        select(func.count()).select_from(Outbox).where(Outbox.state.in_(("pending", "in-flight")))
    )
    print("ready", flush=True)
    sys.stdin.readline()
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF)
    profile = None
    if os.environ.get("BENCH_DELIVERY_PROFILE"):  # a directory: one cProfile dump per worker
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    delivered, deadline = 0, time.monotonic() + WORKER_TIMEOUT
    try:
        while time.monotonic() < deadline:
            reports = worker.drain()
            delivered += sum(r.tally.delivered for r in reports)
            if not reports:
                with factory() as session:
                    if not session.scalar(active):
                        break
                time.sleep(0.005)  # the rows left are other workers' (in flight)
    finally:
        worker.close()
        lock.release()
        engine.dispose()
    if profile is not None:
        profile.disable()
        profile.dump_stats(f"{os.environ['BENCH_DELIVERY_PROFILE']}/worker-{os.getpid()}.prof")
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = used.ru_utime + used.ru_stime - before.ru_utime - before.ru_stime
    print(f"done {time.time():.6f} {delivered} {cpu:.3f}", flush=True)


def run_workers(
    database: Database, config: Path, batch: int, count: int
) -> tuple[float, int, float]:
    """``count`` worker processes on the database; (wall seconds, rows delivered, CPU
    seconds the worker processes used after "go")."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        database.url,
        str(config),
        str(batch),
    ]
    processes = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(count)
    ]
    try:
        for p in processes:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "ready":
                raise SystemExit("a worker process did not start")
        started = time.time()
        for p in processes:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        finished, delivered, cpu = started, 0, 0.0
        for p in processes:
            assert p.stdout is not None
            line = p.stdout.readline().split()
            p.wait(WORKER_TIMEOUT)
            if not line or line[0] != "done":
                raise SystemExit("a worker process failed")
            finished = max(finished, float(line[1]))
            delivered += int(line[2])
            cpu += float(line[3])
        return finished - started, delivered, cpu
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()


# -- the plain clients --------------------------------------------------------------------------


def bundles_sent(server: Server, database: Database) -> list[dict[str, Any]]:
    """The transaction bundles the worker sent (its request log), rebuilt from the bodies
    in the database: the same entries in the same grouping."""
    engine = make_engine(database.url)
    out = []
    try:
        with make_session_factory(engine)() as session:
            for request in server.requests():
                if request["method"] != "POST":
                    continue
                entry = []
                for line in request["entries"]:
                    url = line.split(" ", 1)[1]
                    resource_type, resource_id = url.split("/")
                    body = read_resource(session, resource_type, resource_id)
                    entry.append(
                        {
                            "fullUrl": f"{server.base_url}/{url}",
                            "resource": outgoing(body or {}),
                            "request": {"method": "PUT", "url": url},
                        }
                    )
                out.append({"resourceType": "Bundle", "type": "transaction", "entry": entry})
    finally:
        engine.dispose()
    return out


HEADERS = {"Content-Type": "application/fhir+json", "Prefer": "return=minimal"}


def post_all(base_url: str, bundles: list[dict[str, Any]]) -> None:
    with httpx.Client(timeout=60, headers=HEADERS) as client:
        for bundle in bundles:
            client.post(base_url, content=json.dumps(bundle)).raise_for_status()


def capacity(server: Server, bundles: list[dict[str, Any]], threads: int) -> float:
    """Seconds to POST every bundle with ``threads`` kept-alive clients."""
    server.reset()
    shares = [bundles[n::threads] for n in range(threads)]
    started = time.perf_counter()
    workers = [threading.Thread(target=post_all, args=(server.base_url, s)) for s in shares]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - started


def naive(server: Server, bundles: list[dict[str, Any]]) -> tuple[float, int]:
    """One PUT per resource, each on a new connection."""
    server.reset()
    resources = [e for b in bundles for e in b["entry"]]
    started = time.perf_counter()
    for entry in resources:
        httpx.put(
            f"{server.base_url}/{entry['request']['url']}",
            headers=HEADERS,
            content=json.dumps(entry["resource"]),
            timeout=60,
        ).raise_for_status()
    return time.perf_counter() - started, len(resources)


# -- running ------------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    resources: int = 0
    seconds: float = 0.0
    requests: int = 0
    note: str = ""

    @property
    def rate(self) -> float:
        return self.resources / self.seconds if self.seconds else 0.0


def worker_row(
    label: str,
    server: Server,
    database: Database,
    config: Path,
    batch: int,
    workers: int,
    load: list[tuple[str, bytes]],
    analyze: bool = True,
) -> Row:
    queued = fill(database, config, load, analyze=analyze)
    server.reset()
    seconds, _rows, _cpu = run_workers(database, config, batch, workers)
    engine = make_engine(database.url)
    try:
        states = outbox_states(engine)
        with engine.connect() as conn:
            distinct = conn.execute(
                select(func.count()).select_from(
                    select(Outbox.__table__.c.resource_key).distinct().subquery()
                )
            ).scalar_one()
    finally:
        engine.dispose()
    held = sum(server.count(t) for t in ("Patient", "DiagnosticReport", "Observation", "Specimen"))
    posts = sum(1 for r in server.requests() if r["method"] == "POST")
    note = (
        f"{queued} rows: {states.get('delivered', 0)} delivered, "
        f"{states.get('dead', 0)} dead; server holds {held} of {distinct}"
    )
    if states.get("delivered", 0) != queued or held != distinct:
        note += "  << NOT ALL DELIVERED ONCE"
    return Row(label, distinct, seconds, posts, note)


def process_cpu(match: Callable[[int, str], bool]) -> float:
    """CPU seconds (user + system, reaped children included) of the processes ``match``
    picks by (pid, command name), from /proc; 0 where /proc is not there."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        if not match(int(entry.name), name):
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        total += sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
    return total


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def sink_rows(args: argparse.Namespace) -> None:
    """``--sink N``: PostgreSQL only, a fast sink as the destination; worker counts
    alternated ``--rounds`` times in one run (load drift cancels in the ratios)."""
    counts = [int(c) for c in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "logs").mkdir()
        sink = start_sink(args.sink, tmp / "logs", args.sink_delay_ms)
        try:
            config = write_config(tmp / "consortium.yaml", sink.base_url, args.batch)
            fixtures = load_fixtures(load_consortium(config))
            patients = Patients()
            rates: dict[int, list[float]] = {c: [] for c in counts}
            print(
                "CPU ms/res: the worker processes', all postgres processes' (other users of the "
                "server included) and the sink's CPU per resource, from /proc"
            )
            print(
                f"delivery to a fast sink ({args.sink} processes, answers after "
                f"{args.sink_delay_ms:g} ms), PostgreSQL, "
                f"{len(fixtures)} ORU fixtures x {args.copies} copies, claims of {args.batch}; "
                f"{os.cpu_count()} CPUs"
            )
            print(
                f"{'round':>5} {'workers':>7} {'rows':>6} {'res':>6} {'seconds':>8} "
                f"{'res/s':>7} {'CPU ms/res: workers':>19} {'pg':>6} {'sink':>5}  "
                "load average (1, 5, 15 min); check"
            )
            for n in range(args.rounds):
                for workers in counts if n % 2 == 0 else counts[::-1]:
                    made = postgres_database(args.pg)
                    if isinstance(made, str):
                        raise SystemExit(made)
                    try:
                        load = messages(fixtures, args.copies, f"r{n}w{workers}.", patients)
                        queued = fill(made, config, load)
                        sink.reset()
                        sinks = {sink.process.pid, *_children(sink.process.pid)}
                        pg0 = process_cpu(lambda _p, name: name.startswith("postgres"))
                        sink0 = process_cpu(lambda p, _n, s=sinks: p in s)
                        seconds, _rows, cpu = run_workers(made, config, args.batch, workers)
                        pg = process_cpu(lambda _p, name: name.startswith("postgres")) - pg0
                        sink_cpu = process_cpu(lambda p, _n, s=sinks: p in s) - sink0
                        engine = make_engine(made.url)
                        try:
                            states = outbox_states(engine)
                        finally:
                            engine.dispose()
                    finally:
                        made.drop()
                    got = sink.received()
                    distinct = len(set(got))
                    check = (
                        "ok"
                        if states.get("delivered", 0) == queued
                        else f"NOT ALL DELIVERED {states}"
                    )
                    if len(got) != distinct:
                        check += f", {len(got) - distinct} resent"
                    rate = distinct / seconds if seconds else 0.0
                    rates[workers].append(rate)
                    print(
                        f"{n + 1:5d} {workers:7d} {queued:6d} {distinct:6d} {seconds:8.2f} "
                        f"{rate:7.0f} {cpu * 1000 / max(distinct, 1):10.2f} "
                        f"{pg * 1000 / max(distinct, 1):6.2f} "
                        f"{sink_cpu * 1000 / max(distinct, 1):5.2f}  "
                        f"{load_average()}; {check}",
                        flush=True,
                    )
            base = sum(rates[counts[0]]) / len(rates[counts[0]])
            for workers in counts:
                mean = sum(rates[workers]) / len(rates[workers])
                print(
                    f"workers x{workers}: mean {mean:.0f} res/s = {mean / base:.2f} x "
                    f"workers x{counts[0]}"
                )
        finally:
            sink.stop()


# -- idle workers (--idle) ----------------------------------------------------------------------


def idle_rows(args: argparse.Namespace) -> None:
    """``--idle SECONDS``: PostgreSQL only. The largest count of ``--workers`` real ``adapter
    worker`` processes (this checkout's code) on an empty queue, the destination a
    single-process sink: the CPU the workers and their own PostgreSQL backends use in
    ``SECONDS`` of idling (from /proc; the backends are found by application_name, so other
    users of the server are not counted), then how long after an ingest's commit the sink
    receives the message's resources (``--wakes`` times, one lab message each)."""
    count = max(int(c) for c in args.workers.split(","))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "logs").mkdir()
        sink = start_sink(1, tmp / "logs")
        made = postgres_database(args.pg)
        if isinstance(made, str):
            sink.stop()
            raise SystemExit(made)
        engine = make_engine(made.url)
        processes: list[subprocess.Popen[bytes]] = []
        try:
            migrate(engine)
            config = write_config(tmp / "consortium.yaml", sink.base_url, args.batch)
            consortium = load_consortium(config)
            fixtures = load_fixtures(consortium)
            tag = f"bench-idle-{uuid.uuid4().hex[:8]}"
            for n in range(count):
                url = make_url(made.url).update_query_dict({"application_name": f"{tag}-{n}"})
                env = {
                    **os.environ,
                    "PYTHONPATH": str(ROOT),
                    "ADAPTER_DATABASE_URL": url.render_as_string(hide_password=False),
                    "ADAPTER_CONFIG": str(config),
                    "ADAPTER_LOG_LEVEL": "WARNING",
                }
                command = [sys.executable, "-c", "from adapter.cli import main; main()", "worker"]
                processes.append(
                    subprocess.Popen(
                        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=sys.stderr
                    )
                )
            backends_sql = text("SELECT pid FROM pg_stat_activity WHERE application_name LIKE :tag")
            deadline = time.monotonic() + 120
            while True:
                with engine.connect() as conn:
                    backends = set(conn.scalars(backends_sql, {"tag": f"{tag}-%"}))
                if len(backends) >= count or time.monotonic() > deadline:
                    break
                if any(p.poll() is not None for p in processes):
                    raise SystemExit("a worker process stopped")
                time.sleep(0.1)
            time.sleep(3.0)  # past start-up
            with engine.connect() as conn:
                backends = set(conn.scalars(backends_sql, {"tag": f"{tag}-%"}))
            workers = {p.pid for p in processes}
            w0 = process_cpu(lambda pid, _n: pid in workers)
            b0 = process_cpu(lambda pid, _n: pid in backends)
            time.sleep(args.idle)
            w1 = process_cpu(lambda pid, _n: pid in workers)
            b1 = process_cpu(lambda pid, _n: pid in backends)
            print(
                f"{count} idle workers, {args.idle:g} s, empty queue, PostgreSQL "
                f"({len(backends)} backends of theirs; load average {load_average()}): "
                f"workers {w1 - w0:.3f} s CPU, their PostgreSQL backends {b1 - b0:.3f} s CPU"
            )
            settings = Settings(config=config, database_url=made.url)
            pipeline = make_pipeline(settings, consortium, make_session_factory(engine))
            patients = Patients()
            latencies = []
            for n, (source, raw) in enumerate(messages(fixtures[:1], args.wakes, "wake", patients)):
                sink.reset()
                result = pipeline.ingest(raw, Receipt(source, "cli"))
                committed = time.perf_counter()
                if not result.accepted:
                    raise SystemExit(f"bench input was not accepted: {result.as_dict()}")
                while not sink.received():
                    if time.perf_counter() - committed > 120:
                        raise SystemExit("nothing delivered within 120 s")
                    time.sleep(0.002)
                latencies.append(time.perf_counter() - committed)
                time.sleep(args.idle / 10 if n < args.wakes - 1 else 0)  # idle again
            print(
                "first resource at the sink after the ingest's commit: "
                + ", ".join(f"{s * 1000:.0f} ms" for s in latencies)
                + f" (the workers idle {args.idle / 10:g} s between messages)"
            )
        finally:
            for p in processes:
                p.terminate()
            for p in processes:
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
            engine.dispose()
            made.drop()
            sink.stop()


# -- the claim's cost (--claim-plan) --------------------------------------------------------------


def claim_plan(args: argparse.Namespace) -> None:
    """``--claim-plan``: PostgreSQL only. A synthetic queue of one destination (``--patients``
    patients x ``--queued`` pending rows each, ``--history`` delivered rows each before them),
    then the worker's real claim, EXPLAINed (ANALYZE, BUFFERS; in a transaction rolled back)
    in three states: no head in flight (a first claim), ``--in-flight`` % of the patients'
    heads in flight under a live lease, and every head in flight (an idle claim: it finds
    nothing). The statement is the one ``outbox.claim`` executes (captured from the cursor),
    so the same command measures any version of the claim."""
    from datetime import UTC, datetime

    from sqlalchemy import event

    from adapter.store import outbox

    made = postgres_database(args.pg)
    if isinstance(made, str):
        raise SystemExit(made)
    engine = make_engine(made.url)
    try:
        migrate(engine)
        now = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
        patients, queued, history = args.patients, args.queued, args.history
        from adapter.store import session_factory
        from adapter.store.outbox.names import destination_ids

        with session_factory(engine).begin() as session:
            dest_id = destination_ids(session, [DEST])[DEST]  # decision 0079
        with engine.begin() as conn:
            # the resources the rows name (a claim reads their type, id and patient: 0084)
            conn.execute(
                text(
                    "INSERT INTO resource (resource_type, id, resource_key, version_id, "
                    "last_updated, deleted, content_hash, body, patient_key) "
                    "SELECT 'Observation', 'o' || p || '-' || n, p * 100000 + n + 1, 1, :now, "
                    "false, decode('00', 'hex'), decode('00', 'hex'), 'Patient/p' || p "
                    "FROM generate_series(0, :h + :q - 1) AS n, generate_series(1, :p) AS p"
                ),
                {"p": patients, "q": queued, "h": history, "now": now},
            )
            conn.execute(
                text(
                    "INSERT INTO outbox (destination_id, resource_key, version_id, "
                    "order_key, state, attempts, next_attempt_at, created_at, "
                    "delivered_at) "
                    f"SELECT :d, p * 100000 + n + 1, 1, {PG_ORDER_HASH.format('p')}, "
                    "CASE WHEN n < :h THEN 3 ELSE 1 END, "
                    "CASE WHEN n < :h THEN 1 ELSE 0 END, :now, :now, "
                    "CASE WHEN n < :h THEN CAST(:now AS timestamptz) END "
                    "FROM generate_series(0, :h + :q - 1) AS n, generate_series(1, :p) AS p "
                    "ORDER BY n, p"
                ),
                {"d": dest_id, "p": patients, "q": queued, "h": history, "now": now},
            )
            conn.execute(text("ANALYZE outbox"))
        total = patients * (queued + history)
        print(
            f"claim plan: one destination, {patients} patients x {queued} pending rows "
            f"(+ {history} delivered rows each before them): {total} outbox rows, "
            f"{patients * queued} active; claims of {args.batch}; PostgreSQL "
            f"{engine.dialect.server_version_info}; load average {load_average()}"
        )

        statements: list[tuple[str, Any]] = []

        def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:
            if statement.lstrip().upper().startswith("UPDATE OUTBOX"):
                statements.append((statement, parameters))

        factory = make_session_factory(engine)
        event.listen(engine, "before_cursor_execute", capture)
        with factory() as session:  # the claim's SQL, as the worker sends it (rolled back)
            outbox.claim(
                session,
                destination=DEST,
                worker="w",
                now=now,
                lease_seconds=120,
                limit=args.batch,
            )
            session.rollback()
        event.remove(engine, "before_cursor_execute", capture)
        statement, parameters = statements[0]
        if args.verbose:
            print(statement)

        def put_heads_in_flight(conn, share: float) -> int:
            chosen = int(patients * share)
            conn.execute(
                text(
                    "UPDATE outbox SET state = 2, claimed_by = 'other', "  # in-flight
                    "claimed_until = :until WHERE id IN (SELECT min(id) FROM outbox "
                    f"WHERE state = 1 AND order_key IN (SELECT {PG_ORDER_HASH.format('p')} "
                    "FROM generate_series(1, :c) AS p) GROUP BY order_key)"
                ),
                {"until": now + timedelta(hours=1), "c": chosen},
            )
            return chosen

        print(
            f"{'heads in flight':>16} {'claimed':>8} {'ms':>8} {'buffers':>8} "
            f"{'rows read':>10}  (best of {args.repeat} by time; rows read = table rows every "
            "scan returned or filtered out, times its loops)"
        )
        for share in (0.0, args.in_flight / 100, 1.0):
            best: tuple[float, int, int, int] | None = None
            plan_text = ""
            for _ in range(args.repeat):
                with engine.connect() as conn:
                    transaction = conn.begin()
                    busy = put_heads_in_flight(conn, share)
                    raw = conn.exec_driver_sql(
                        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters
                    ).scalar_one()
                    plan = raw[0] if isinstance(raw, list) else json.loads(raw)[0]
                    if not plan_text:
                        plan_text = "\n".join(
                            r[0]
                            for r in conn.exec_driver_sql(
                                "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
                            )
                        )
                    transaction.rollback()
                claimed = int(plan["Plan"].get("Actual Rows", 0))
                buffers, rows_read = _plan_reads(plan["Plan"])
                figures = (float(plan["Execution Time"]), buffers, rows_read, claimed)
                if best is None or figures[0] < best[0]:
                    best = figures
            assert best is not None
            print(
                f"{busy:>7} of {patients:<6} {best[3]:8d} {best[0]:8.1f} {best[1]:8d} {best[2]:10d}"
            )
            if args.verbose:
                print(plan_text)
    finally:
        engine.dispose()
        made.drop()


TABLE_SCANS = {"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan"}


def _plan_reads(node: dict[str, Any]) -> tuple[int, int]:
    """(shared buffers hit + read, table rows read) of a plan tree: the rows every scan of a
    table returned or filtered out, times its loops (index entries and subquery scans are
    not counted)."""
    buffers = int(node.get("Shared Hit Blocks", 0)) + int(node.get("Shared Read Blocks", 0))
    rows = 0

    def walk(n: dict[str, Any]) -> None:
        nonlocal rows
        if n.get("Node Type") in TABLE_SCANS:
            loops = int(n.get("Actual Loops", 1))
            rows += (int(n.get("Actual Rows", 0)) + int(n.get("Rows Removed by Filter", 0))) * loops
            rows += int(n.get("Rows Removed by Index Recheck", 0))
        for child_node in n.get("Plans", []):
            walk(child_node)

    walk(node)
    return buffers, rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--copies", type=int, default=6, help="unique copies of every fixture per row (default 6)"
    )
    ap.add_argument("--batch", type=int, default=20, help="worker claim size (default 20)")
    ap.add_argument("--pg", default=DEFAULT_PG, help=f"PostgreSQL URL (default {DEFAULT_PG})")
    ap.add_argument("--no-pg", action="store_true", help="SQLite only")
    ap.add_argument(
        "--no-analyze",
        action="store_true",
        help="PostgreSQL: no ANALYZE after filling the queue (stale statistics)",
    )
    ap.add_argument(
        "--sink",
        type=int,
        default=0,
        metavar="N",
        help="PostgreSQL only, to a fast sink of N processes instead of Medplum",
    )
    ap.add_argument(
        "--sink-delay-ms", type=float, default=0.0, help="with --sink: latency per request"
    )
    ap.add_argument("--workers", default="1,4", help="with --sink: worker counts (1,4)")
    ap.add_argument("--rounds", type=int, default=2, help="with --sink: rounds (2)")
    ap.add_argument(
        "--claim-plan",
        action="store_true",
        help="PostgreSQL: EXPLAIN ANALYZE the claim on a synthetic queue (no delivery)",
    )
    ap.add_argument("--patients", type=int, default=1000, help="with --claim-plan (1000)")
    ap.add_argument("--queued", type=int, default=8, help="with --claim-plan: rows each (8)")
    ap.add_argument(
        "--history", type=int, default=20, help="with --claim-plan: delivered rows each (20)"
    )
    ap.add_argument(
        "--in-flight", type=float, default=95, help="with --claim-plan: %% of heads in flight"
    )
    ap.add_argument("--repeat", type=int, default=5, help="with --claim-plan: runs each (5)")
    ap.add_argument("--verbose", action="store_true", help="with --claim-plan: print the plans")
    ap.add_argument(
        "--idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="PostgreSQL: CPU of idle `adapter worker` processes, then their wake-up latency",
    )
    ap.add_argument("--wakes", type=int, default=3, help="with --idle: messages sent after (3)")
    ap.add_argument("--child", nargs=3, metavar=("URL", "CONFIG", "BATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), int(args.child[2]))
        return
    if args.claim_plan:
        claim_plan(args)
        return
    if args.idle:
        import logging

        logging.disable(logging.WARNING)
        idle_rows(args)
        return
    if args.sink:
        import logging

        logging.disable(logging.WARNING)
        sink_rows(args)
        return

    import logging

    logging.disable(logging.WARNING)
    began = time.perf_counter()
    server = start_medplum()
    rows: list[Row] = []
    skipped: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            config = write_config(tmp / "consortium.yaml", server.base_url, args.batch)
            fixtures = load_fixtures(load_consortium(config))
            patients = Patients()
            sqlite = sqlite_database(tmp, "bench.db")
            rows.append(
                worker_row(
                    "worker x1, SQLite (SQLite takes one worker)",
                    server,
                    sqlite,
                    config,
                    args.batch,
                    1,
                    messages(fixtures, args.copies, "s", patients),
                )
            )
            bundles = bundles_sent(server, sqlite)
            for workers in (1, 4):
                label = (
                    f"worker x{workers}, PostgreSQL"
                    + (" (4 processes, one queue)" if workers > 1 else "")
                    + (" no ANALYZE" if args.no_analyze else "")
                )
                made = "--no-pg given" if args.no_pg else postgres_database(args.pg)
                if isinstance(made, str):
                    skipped.append(f"{label}: {made}")
                    continue
                try:
                    rows.append(
                        worker_row(
                            label,
                            server,
                            made,
                            config,
                            args.batch,
                            workers,
                            messages(fixtures, args.copies, f"p{workers}.", patients),
                            not args.no_analyze,
                        )
                    )
                finally:
                    made.drop()
            entries = sum(len(b["entry"]) for b in bundles)
            for threads in (1, 4):
                seconds = capacity(server, bundles, threads)
                rows.append(
                    Row(
                        f"capacity: plain httpx.Client kept alive x{threads}",
                        entries,
                        seconds,
                        len(bundles),
                        "the SQLite worker's bundles, same entries and grouping",
                    )
                )
            seconds, count = naive(server, bundles)
            rows.append(
                Row(
                    "naive: one PUT per resource, new connection each",
                    count,
                    seconds,
                    count,
                    "httpx.put without a client, sequential",
                )
            )
        report(rows, skipped, fixtures, args, time.perf_counter() - began)
    finally:
        server.stop()


def report(
    rows: list[Row],
    skipped: list[str],
    fixtures: list[Fixture],
    args: argparse.Namespace,
    spent: float,
) -> None:
    print(
        f"delivery benchmark: {len(fixtures)} ORU fixtures x {args.copies} unique copies "
        f"(patients unique) per row; one FHIR destination = Medplum 4.5.2 in memory on "
        f"loopback; worker claims {args.batch}, transaction bundles; "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {spent:.0f} s"
    )
    print(f"\n{'':52} {'res/s':>8} {'seconds':>8} {'requests':>9}  resources")
    for row in rows:
        print(
            f"{row.label:52} {row.rate:8.0f} {row.seconds:8.2f} {row.requests:9d}  "
            f"{row.resources}  {row.note}"
        )
    for line in skipped:
        print(f"skipped: {line}")
    print("\nratios (this run):")
    named = {r.label: r.rate for r in rows}
    cap = next((v for k, v in named.items() if k.startswith("capacity") and k.endswith("x1")), 0.0)
    cap4 = next((v for k, v in named.items() if k.startswith("capacity") and k.endswith("x4")), 0.0)
    naive_rate = next((v for k, v in named.items() if k.startswith("naive")), 0.0)
    for label, value in named.items():
        if label.startswith("worker") and cap:
            print(
                f"  {label.split(' (')[0]:28} = {value / cap:.2f} x capacity (1 client), "
                f"{value / cap4:.2f} x capacity (4 clients), "
                f"{value / naive_rate:.1f} x naive"
            )
    if cap and naive_rate:
        print(f"  capacity (1 client)          = {cap / naive_rate:.1f} x naive")
    w1 = next((v for k, v in named.items() if k.startswith("worker x1, PostgreSQL")), 0.0)
    w4 = next((v for k, v in named.items() if k.startswith("worker x4")), 0.0)
    if w1 and w4:
        print(f"  worker x4 / worker x1 (PostgreSQL) = {w4 / w1:.2f}")


if __name__ == "__main__":
    main()
