"""Benchmark: single-document POST /ingest through the real server (adapter serve on
loopback), with 1 and with 4 concurrent clients (issue 14 §2 goal: >= 150 messages/s with
4 clients).

    .venv/bin/python bench/bench_post_ingest.py [--messages 400] [--pg URL | --no-pg]
        [--workers 1,2,4] [--no-sqlite] [--group-max 0,32] [--repeat 2]
        [--answer when-stored,on-receipt]

Input: the ORU fixtures made unique as in bench_ingest.py, a new patient per copy
(bench_delivery.Patients). Each client is one kept-alive httpx.Client posting one message
at a time (as a LIS interface does) and checking the 202. The server is the example
consortium with authentication off, on a fresh SQLite file and on a fresh PostgreSQL
schema (a fresh one per ``--workers`` count: ``adapter serve --workers N``, N processes on
one socket). Printed per database and worker count: messages/s and p50 / p95 ms per request
for 1 and 4 clients, and 4 clients / 1 client, and the CPU per message of the server
process (with its ``--workers`` and translation worker processes), of its event loop, of
the benchmark's own clients (httpx, this process: they share the machine's cores) and, on
PostgreSQL, of the database backends serving the server (found by application_name).
``--group-max`` runs one server per value of ADAPTER_INGEST_GROUP_MAX (0: each request in a
transaction of its own, as before decision 0051; default: the setting's default), and
``--repeat`` alternates the whole list that many times (before/after in the same conditions).
``--answer on-receipt`` posts with ``Prefer: respond-async`` (decision 0063): the rate and
p95 are then those of the answers (receipts); after the last answer the benchmark waits until
no message is ``received`` and prints how many were left, how long the drain took to finish,
the end-to-end rate (every message final) and the drain's rate while and after receiving;
the server CPU then covers receipt and drain. ``--answer when-stored,on-receipt`` alternates
both in the same run.
``--groups`` runs the servers with ADAPTER_LOG_LEVEL=DEBUG and prints how many documents each
stored transaction held (group.py logs one line per transaction; the logging costs a little
CPU, so the rates of such a run are not comparable), and with ``--answer on-receipt`` how
many messages each of the drain's batches held (decision 0131). ``--profile FILE`` runs each server
under cProfile, every thread (bench/profiling/sitecustomize.py), and writes the merged
profile of the last one's 4-client run to FILE (``python -m pstats FILE``; it slows the
server several times: read the shares, not the rates; decision 0052); ``--stages FILE``
prints the server's CPU per message by pipeline stage (bench/profiling/stages.py: cheap,
the rates stay close). "event loop" is the server's main thread: uvicorn, the middlewares,
FastAPI (the pipeline runs in threadpool threads).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from auto_analyze import AutoAnalyze
from bench_delivery import Patients, messages
from bench_ingest import DEFAULT_PG, load_fixtures, postgres_engine

from adapter.consortium import load_consortium
from adapter.settings import Settings
from adapter.store import make_engine, migrate
from tests.live.server import LiveServer


def post_all(
    url: str,
    items: list[tuple[str, bytes]],
    clients: int,
    headers: dict[str, str] | None = None,
    kind: str = "raw",
) -> tuple[float, list[float], float]:
    """Post ``items`` with ``clients`` threads, each on one kept-alive connection;
    (messages/s, each request's ms, the client threads' CPU seconds together)."""
    latencies: list[float] = []
    lock = threading.Lock()
    parts = [items[n::clients] for n in range(clients)]
    failures: list[str] = []
    spent_cpu: list[float] = []
    post = _raw_client if kind == "raw" else _httpx_client

    def client(part: list[tuple[str, bytes]]) -> None:
        started = time.thread_time()
        try:
            post(url, part, headers or {}, latencies, failures, lock)
        finally:
            with lock:
                spent_cpu.append(time.thread_time() - started)

    threads = [threading.Thread(target=client, args=(p,)) for p in parts]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spent = time.perf_counter() - start
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, first: {failures[0]}")
    return len(items) / spent, latencies, sum(spent_cpu)


def _httpx_client(
    url: str,
    part: list[tuple[str, bytes]],
    headers: dict[str, str],
    latencies: list[float],
    failures: list[str],
    lock: threading.Lock,
) -> None:
    """httpx (the benchmark's client before 2026-12-05 postrate: ~1 ms of CPU a request)."""
    with httpx.Client(timeout=120) as http:
        for source, raw in part:
            start = time.perf_counter()
            answer = http.post(
                url,
                content=raw,
                headers={
                    "X-Source-System": source,
                    "Content-Type": "application/hl7-v2",
                    **headers,
                },
            )
            spent = (time.perf_counter() - start) * 1000
            if answer.status_code != 202:
                failures.append(f"{answer.status_code} {answer.text[:200]}")
            with lock:
                latencies.append(spent)


def _raw_client(
    url: str,
    part: list[tuple[str, bytes]],
    headers: dict[str, str],
    latencies: list[float],
    failures: list[str],
    lock: threading.Lock,
) -> None:
    """One HTTP/1.1 keep-alive connection written by hand: the request's bytes sent at once,
    the answer read up to its Content-Length and its status checked (a LIS interface does
    no more); a fraction of httpx's CPU, so the clients are not what the 2 cores spend."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    fixed = f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    sock: socket.socket | None = None
    try:
        for source, raw in part:
            if sock is None:
                sock = socket.create_connection((host, port), timeout=120)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            head = (
                f"{fixed}X-Source-System: {source}\r\nContent-Type: application/hl7-v2\r\n"
                f"Content-Length: {len(raw)}\r\n\r\n"
            )
            start = time.perf_counter()
            sock.sendall(head.encode("ascii") + raw)
            status, body, close = _read_answer(sock)
            spent = (time.perf_counter() - start) * 1000
            if status != 202:
                failures.append(f"{status} {body[:200]!r}")
            with lock:
                latencies.append(spent)
            if close:
                sock.close()
                sock = None
    finally:
        if sock is not None:
            sock.close()


def _read_answer(sock: socket.socket) -> tuple[int, bytes, bool]:
    """(status, body, the server closes the connection) of one HTTP/1.1 answer."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    pairs = (line.partition(":") for line in lines[1:])
    fields = {name.strip().lower(): value.strip() for name, _, value in pairs}
    length = int(fields.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        body += chunk
    return status, body, fields.get("connection", "").lower() == "close"


def children_cpu(pid: int) -> float:
    """CPU seconds of a process's running children (translation workers, ``--workers``)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        children = [int(c) for task in tasks for c in (task / "children").read_text().split()]
    except OSError:
        return float("nan")
    return sum(server_cpu(child) for child in children)


def thread_cpu(pid: int, tid: int | None = None) -> float:
    """CPU seconds of one thread (default: the main one: uvicorn's event loop, the
    middlewares, FastAPI; the pipeline runs in the threadpool), from /proc."""
    try:
        stat = Path(f"/proc/{pid}/task/{tid or pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def print_stages(path: Path, count: int) -> None:
    """bench/profiling/stages.py's figures: CPU ms per message by stage (inclusive)."""
    import json

    figures = json.loads(path.read_text())
    for name, (calls, seconds) in sorted(figures.items(), key=lambda kv: -kv[1][1]):
        if calls:
            print(f"   {seconds * 1000 / count:7.2f} ms/msg {calls:6d} calls  {name}")


def server_cpu(pid: int) -> float:
    """CPU seconds of a process, its finished children and its running ones (the
    ``--workers`` processes, translation workers), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        # children of every thread: translation workers are started from a pool thread
        children = [
            child
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
    except OSError:
        return float("nan")
    own = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return own + sum(server_cpu(int(child)) for child in children)


DRAIN_THREAD = "adapter-drain"  # adapter/pipeline/drain.py names its thread so for the OS
_TICK = os.sysconf("SC_CLK_TCK")


def _stat_seconds(path: Path, fields: slice = slice(11, 13)) -> float:
    values = path.read_text().rsplit(")", 1)[1].split()[fields]
    return sum(int(v) for v in values) / _TICK


def cpu_parts(pid: int | None) -> dict[str, float]:
    """CPU seconds of a process by part, from /proc: ``loop`` its main thread (the server's
    event loop: uvicorn, the middlewares, FastAPI), ``drain`` its drain thread (the store;
    named DRAIN_THREAD), ``threads`` the rest of its own (the receipts in the HTTP thread
    pool, the translation pool's thread, threads already ended), ``children`` its child
    processes (translation workers, ``--workers`` processes) running or ended; the server's
    drain process (decision 0102: a child with a DRAIN_THREAD) is split: its drain thread
    in ``drain``, its other threads in ``apart``, its translation workers in ``children``."""
    parts = dict.fromkeys(("loop", "drain", "threads", "children", "apart"), 0.0)
    if pid is None:
        return parts
    own_drain = 0.0
    try:
        own = _stat_seconds(Path(f"/proc/{pid}/stat"))
        parts["children"] = _stat_seconds(Path(f"/proc/{pid}/stat"), slice(13, 15))
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                seconds = _stat_seconds(task / "stat")
                name = (task / "comm").read_text().strip()
                children = (task / "children").read_text().split()
            except OSError:  # the thread ended meanwhile: counted in ``threads``
                continue
            if int(task.name) == pid:
                parts["loop"] += seconds
            elif name == DRAIN_THREAD:
                parts["drain"] += seconds
                own_drain += seconds
            for child in map(int, children):
                if _has_drain_thread(child):
                    inner = cpu_parts(child)
                    parts["drain"] += inner["drain"]
                    parts["apart"] += inner["loop"] + inner["threads"] + inner["apart"]
                    parts["children"] += inner["children"]
                else:
                    parts["children"] += server_cpu(child)
    except OSError:
        return dict.fromkeys(parts, float("nan"))
    parts["threads"] = own - parts["loop"] - own_drain
    return parts


def _has_drain_thread(pid: int) -> bool:
    try:
        return any(
            (task / "comm").read_text().strip() == DRAIN_THREAD
            for task in Path(f"/proc/{pid}/task").iterdir()
        )
    except OSError:
        return False


def parts_since(before: dict[str, float], pid: int | None) -> dict[str, float]:
    after = cpu_parts(pid)
    return {k: after[k] - before[k] for k in after}


def print_cpu_table(
    clients: int,
    count: int,
    wall: float,
    client_cpu: float,
    server: dict[str, float],
    follow: dict[str, float] | None,
    backends: float | None,
    kind: str,
) -> None:
    """Where the CPU went, per message, every process on the machine that serves the run:
    from the first post until every message was final."""
    cores = len(os.sched_getaffinity(0))
    rows = [
        (f"benchmark's clients ({clients} threads, {kind})", client_cpu),
        ("server: event loop (uvicorn, starlette, FastAPI)", server["loop"]),
        ("server: receipts and other threads", server["threads"]),
        ("server: drain thread (the store; in its drain process)", server["drain"]),
        ("server: drain process's other threads", server["apart"]),
        ("server: child processes (translation workers)", server["children"]),
    ]
    if follow is not None:
        rows += [
            ("adapter drain --follow: drain thread (the store)", follow["drain"]),
            ("adapter drain --follow: other threads", follow["loop"] + follow["threads"]),
            ("adapter drain --follow: translation workers", follow["children"]),
        ]
    if backends is not None:
        rows.append(("PostgreSQL backends", backends))
    total = sum(seconds for _, seconds in rows)
    rows += [
        ("total", total),
        (f"{cores} cores x wall ({wall:.1f} s)", cores * wall),
        ("idle, waiting, or other processes", cores * wall - total),
    ]
    print(f"      CPU ms per message, {clients} client(s), first post to every message final:")
    for name, seconds in rows:
        print(f"        {name:<52} {seconds * 1000 / count:6.2f}")


APP_NAME = "bench_post_ingest"  # the server's PostgreSQL connections, to find their backends


def backend_cpu(engine: Engine | None) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving the benchmarked server (by
    application_name; the database runs on this machine), from /proc."""
    if engine is None:
        return {}
    with engine.connect() as conn:
        pids = conn.scalars(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
            {"name": APP_NAME},
        ).all()
    seconds: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def wait_drained(watch: Engine, timeout: float = 1800.0) -> tuple[int, float]:
    """(messages still ``received`` when called, seconds until none is): the drain's tail
    after the last answer on receipt."""
    start = time.perf_counter()
    first: int | None = None
    while True:
        with watch.connect() as conn:
            left = conn.scalar(
                text("SELECT count(*) FROM inbound_message WHERE status = 'received'")
            )
        first = left if first is None else first
        if not left or time.perf_counter() - start > timeout:
            return int(first or 0), time.perf_counter() - start
        time.sleep(0.02)


def start_follow(
    url: str, tmp: Path, batch: int | None, workers: int | None
) -> subprocess.Popen[bytes]:
    """``adapter drain --follow`` beside the server (a process of its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_")}
    env["ADAPTER_DATABASE_URL"] = url
    if workers is not None:
        env["ADAPTER_TRANSLATE_WORKERS"] = str(workers)
    command = [sys.executable, "-m", "adapter.cli", "drain", "--follow"]
    command += ["--batch", str(batch)] if batch else []
    quiet = subprocess.DEVNULL
    logged = os.environ.get("BENCH_FOLLOW_LOG")  # its DEBUG log (batch sizes) to this file
    if logged:
        env["ADAPTER_LOG_LEVEL"] = "DEBUG"
        with open(logged, "ab") as out:
            return subprocess.Popen(command, cwd=tmp, env=env, stdout=quiet, stderr=out)
    return subprocess.Popen(command, cwd=tmp, env=env, stdout=quiet, stderr=quiet)


def drain_apart(url: str, tmp: Path, batch: int | None) -> tuple[float, float]:
    """``adapter drain`` once, in a process of its own: (seconds, CPU seconds)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTER_")}
    env["ADAPTER_DATABASE_URL"] = url
    command = [sys.executable, "-m", "adapter.cli", "drain"]
    command += ["--batch", str(batch)] if batch else []
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=tmp, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):  # 1: some were quarantined
        raise SystemExit(f"adapter drain failed: {process.returncode}")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


PROFILING = Path(__file__).resolve().parent / "profiling"  # its sitecustomize.py
_GROUP_LINE = re.compile(r"group commit: (\d+) documents? (?:in one transaction|alone)")
_DRAIN_LINE = re.compile(r"drain: (\d+) messages settled in one batch")  # drain.py's DEBUG


def group_sizes(log_text: str, line: re.Pattern[str] = _GROUP_LINE) -> dict[int, int]:
    """Transactions by number of documents, from group.py's DEBUG lines (or the drain's
    batches, ``_DRAIN_LINE``)."""
    sizes: dict[int, int] = {}
    for match in line.finditer(log_text):
        size = int(match.group(1))
        sizes[size] = sizes.get(size, 0) + 1
    return dict(sorted(sizes.items()))


def run(
    label: str,
    url: str,
    tmp: Path,
    items: list[tuple[str, bytes]],
    workers: int,
    group_max: int | None = None,
    *,
    groups: bool = False,
    profile: str | None = None,
    stages: str | None = None,
    database: Engine | None = None,
    answer: str = "when-stored",
    drain: str = "server",
    drain_batch: int | None = None,
    drain_defer: float | None = None,
    translate_workers: int | None = None,
    client: str = "raw",
) -> None:
    """One server on ``url``; ``database``: an engine on its PostgreSQL database, to read
    its backends' CPU (None on SQLite: the database works inside the server process);
    ``answer``: ``on-receipt`` posts with ``Prefer: respond-async`` and waits for the drain."""
    on_receipt = answer == "on-receipt"
    prefer = {"Prefer": "respond-async"} if on_receipt else None
    watch = make_engine(url) if on_receipt else None
    apart = on_receipt and drain == "apart"
    follow = on_receipt and drain == "follow"
    half = len(items) // 2
    args = ["--workers", str(workers)] if workers > 1 else []
    env = {"ADAPTER_INGEST_GROUP_MAX": str(group_max)} if group_max is not None else {}
    if apart or follow:
        env["ADAPTER_INGEST_DRAIN"] = "false"
    if translate_workers is not None:
        env["ADAPTER_TRANSLATE_WORKERS"] = str(translate_workers)
    if drain_batch is not None:
        env["ADAPTER_INGEST_DRAIN_BATCH"] = str(drain_batch)
    if drain_defer is not None:
        env["ADAPTER_INGEST_DRAIN_DEFER_SECONDS"] = str(drain_defer)
    if groups:
        env["ADAPTER_LOG_LEVEL"] = "DEBUG"
    if os.environ.get("BENCH_SERVER_LOG_LEVEL"):  # study: e.g. DEBUG, the drain's batch lines
        env["ADAPTER_LOG_LEVEL"] = os.environ["BENCH_SERVER_LOG_LEVEL"]
    if profile or stages:
        path = os.pathsep.join(filter(None, [str(PROFILING), os.environ.get("PYTHONPATH")]))
        env["PYTHONPATH"] = path
    if profile:
        env["BENCH_PROFILE_FILE"] = str(Path(profile).resolve())
    if stages:
        env["BENCH_STAGES_FILE"] = str(Path(stages).resolve())
    sizes: dict[int, int] = {}
    batches: dict[int, int] = {}  # the drain's batches by messages (--groups, on receipt)
    # a profiled start-up (cProfile reading each thread's CPU clock) takes minutes
    wait = 900.0 if profile else 120.0
    with LiveServer(url, tmp, args=args, env=env, start_timeout=wait) as server:
        assert server.process is not None
        post_all(server.url("/ingest"), items[:8], 1, prefer, client)  # warm-up
        # started after the warm-up's receipts: drained below, its mappings then loaded
        follower = start_follow(url, tmp, drain_batch, translate_workers) if follow else None
        startup = (0.0, 0.0)
        if apart:  # start-up (mappings, translation workers) measured on 8 messages
            startup = drain_apart(url, tmp, drain_batch)
        elif watch is not None:
            wait_drained(watch)
        rows = {}
        tails = {}
        drains: dict[int, float] = {}
        backend_spent: dict[int, float] = {}
        tables: dict[int, tuple[float, float, dict[str, float], dict[str, float] | None]] = {}
        for clients, chunk in ((1, items[8:half]), (4, items[half:])):
            if (profile or stages) and clients == 4:  # what is written: the 4 clients only
                os.kill(server.process.pid, signal.SIGUSR1)
                time.sleep(0.2)
            before = server_cpu(server.process.pid)
            follow_before = server_cpu(follower.pid) if follower is not None else 0.0
            kids_before = children_cpu(server.process.pid)
            loop_before = thread_cpu(server.process.pid)
            backends_before = backend_cpu(database)
            parts_before = cpu_parts(server.process.pid)
            follow_parts = cpu_parts(follower.pid if follower is not None else None)
            window = time.perf_counter()
            rate, lat, client_cpu = post_all(server.url("/ingest"), chunk, clients, prefer, client)
            own = client_cpu * 1000 / len(chunk)
            if apart:  # the receipts alone, then `adapter drain` once
                left, (tail, drain_cpu) = len(chunk), drain_apart(url, tmp, drain_batch)
                # without its start-up, as `adapter drain --follow` runs (measured on the
                # warm-up's 8 messages: an over-estimate of the start-up, by 8 messages)
                tail, drain_cpu = tail - startup[0], drain_cpu - startup[1]
                tails[clients] = (left, tail, len(chunk) / (len(chunk) / rate + tail))
                drains[clients] = drain_cpu * 1000 / len(chunk)
            elif watch is not None:  # the CPU below then covers receipt and drain
                left, tail = wait_drained(watch)
                tails[clients] = (left, tail, len(chunk) / (len(chunk) / rate + tail))
            wall = time.perf_counter() - window
            server_parts = parts_since(parts_before, server.process.pid)
            follow_spent = parts_since(follow_parts, follower.pid) if follower is not None else None
            tables[clients] = (wall, client_cpu, server_parts, follow_spent)
            cpu = (server_cpu(server.process.pid) - before) * 1000 / len(chunk)
            kids = (children_cpu(server.process.pid) - kids_before) * 1000 / len(chunk)
            if follower is not None:
                drains[clients] = (server_cpu(follower.pid) - follow_before) * 1000 / len(chunk)
            loop = (thread_cpu(server.process.pid) - loop_before) * 1000 / len(chunk)
            backends = backend_cpu(database)  # a backend started meanwhile counts from 0
            spent = sum(s - backends_before.get(pid, 0.0) for pid, s in backends.items())
            db = spent * 1000 / len(chunk) if database is not None else None
            rows[clients] = (rate, lat, cpu, loop, own, db, kids)
            if database is not None:
                backend_spent[clients] = spent
            if groups and clients == 1:
                sizes = group_sizes(server.log_text())
                batches = group_sizes(server.log_text(), _DRAIN_LINE)
        if follower is not None:
            follower.send_signal(signal.SIGTERM)
            follower.wait(60)
        if os.environ.get("BENCH_SERVER_LOG"):  # study: the server's log (timestamps)
            Path(os.environ["BENCH_SERVER_LOG"]).write_text(server.log_text())
    if groups:
        with_four = group_sizes(server.log_text())
        sizes = {n: with_four.get(n, 0) - sizes.get(n, 0) for n in with_four}
        drained = group_sizes(server.log_text(), _DRAIN_LINE)
        batches = {n: drained.get(n, 0) - batches.get(n, 0) for n in drained}
    if watch is not None:
        watch.dispose()
    grouping = "" if group_max is None else f", ADAPTER_INGEST_GROUP_MAX={group_max}"
    grouping += ", answered on receipt (Prefer: respond-async)" if on_receipt else ""
    grouping += ", drained apart (adapter drain after the run)" if apart else ""
    grouping += ", drained beside (adapter drain --follow)" if follow else ""
    grouping += (
        f", ADAPTER_TRANSLATE_WORKERS={translate_workers}" if translate_workers is not None else ""
    )
    grouping += f", drain batch {drain_batch}" if drain_batch is not None else ""
    grouping += f", drain defer {drain_defer} s" if drain_defer is not None and on_receipt else ""
    print(
        f"\n== {label}, adapter serve --workers {workers}{grouping} "
        f"(load average {os.getloadavg()[0]:.1f})"
    )
    for clients, (rate, lat, cpu, loop, own, db, kids) in rows.items():
        p95 = statistics.quantiles(lat, n=20)[18]
        backends = "" if db is None else f"; PostgreSQL backends {db:4.1f}"
        # with --workers N the main process only supervises: its thread serves nothing
        loop_text = f"{loop:4.1f}" if workers == 1 else "   -"
        print(
            f"   {clients} client(s): {rate:7.1f} msg/s   p50 {statistics.median(lat):7.1f} ms   "
            f"p95 {p95:7.1f} ms   server CPU {cpu:5.1f} ms/msg (event loop {loop_text}; "
            f"child processes {kids:4.1f}; "
            f"clients {own:4.1f}{backends})"
        )
        if clients in tails:
            left, tail, overall = tails[clients]
            drained = len(lat) - left  # while the clients posted
            during = drained * rate / len(lat)
            after = left / tail if tail > 0 else float("nan")
            if clients in drains and follow:
                print(
                    f"      received not yet drained at the last answer {left}; every message "
                    f"final {tail:5.1f} s later: end-to-end {overall:6.1f} msg/s (drain "
                    f"{during:5.1f} msg/s while receiving, {after:5.1f} after; adapter drain "
                    f"--follow CPU {drains[clients]:5.1f} ms/msg, server CPU above: receipts)"
                )
            elif clients in drains:
                print(
                    f"      adapter drain afterwards, less its start-up ({startup[0]:.1f} s): "
                    f"{tail:5.1f} s, {left / tail:6.1f} msg/s, "
                    f"{drains[clients]:5.1f} ms CPU/msg (its process; server CPU above: receipts); "
                    f"end-to-end {overall:6.1f} msg/s"
                )
            else:
                print(
                    f"      received not yet drained at the last answer {left}; every message "
                    f"final {tail:5.1f} s later: end-to-end {overall:6.1f} msg/s (drain "
                    f"{during:5.1f} msg/s while receiving, {after:5.1f} after; server CPU above: "
                    "receipt + drain)"
                )
        wall, client_cpu, server_parts, follow_spent = tables[clients]
        print_cpu_table(
            clients,
            len(lat),
            wall,
            client_cpu,
            server_parts,
            follow_spent,
            backend_spent.get(clients),
            client,
        )
    ratio = rows[4][0] / rows[1][0]  # rate with 4 clients / with 1
    verdict = "met" if rows[4][0] >= 150 else "NOT met"
    goal = "answers (receipts)" if on_receipt else "msg/s"
    print(f"   4 clients / 1 client: {ratio:.2f}x; goal >= 150 {goal} with 4 clients: {verdict}")
    if 4 in tails:
        verdict = "met" if tails[4][2] >= 150 else "NOT met"
        print(f"   end-to-end (every message final) >= 150 msg/s with 4 clients: {verdict}")
    if stages:
        print_stages(Path(stages), len(items) - half)
    if groups:
        shown = ", ".join(f"{n}: {count}" for n, count in sizes.items() if count)
        print(f"   transactions by documents, 4 clients: {{{shown}}}")
        if on_receipt:
            shown = ", ".join(f"{n}: {count}" for n, count in batches.items() if count)
            print(f"   the drain's batches by messages, 4 clients: {{{shown}}}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--messages", type=int, default=400, help="messages per database (400)")
    ap.add_argument("--pg", default=DEFAULT_PG)
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument(
        "--workers",
        default="1",
        help="comma-separated `adapter serve --workers` counts, one server each (default 1)",
    )
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument(
        "--group-max",
        default=None,
        help="comma-separated ADAPTER_INGEST_GROUP_MAX values, one server each (0: off)",
    )
    ap.add_argument(
        "--answer",
        default="when-stored",
        help="comma-separated: when-stored (answered once stored) and/or on-receipt "
        "(Prefer: respond-async, then the drain), one server each (default when-stored)",
    )
    ap.add_argument(
        "--drain",
        default="server",
        help="with --answer on-receipt, comma-separated: server (the server's drain thread), "
        "apart (the server without it; adapter drain once after each run) and/or follow "
        "(the server without it; adapter drain --follow beside it all along)",
    )
    ap.add_argument("--drain-batch", type=int, help="ADAPTER_INGEST_DRAIN_BATCH (default 100)")
    ap.add_argument(
        "--drain-defer",
        default=None,
        help="comma-separated ADAPTER_INGEST_DRAIN_DEFER_SECONDS values, one server each "
        "(with --drain server; default: the setting's, 2)",
    )
    ap.add_argument(
        "--translate-workers",
        default=None,
        help="comma-separated ADAPTER_TRANSLATE_WORKERS values, one server (and drain) each",
    )
    ap.add_argument(
        "--client",
        default="raw",
        choices=("raw", "httpx"),
        help="the clients: raw (one hand-written HTTP/1.1 keep-alive connection each, the "
        "default) or httpx (one httpx.Client each, as before 2026-12-05 postrate)",
    )
    ap.add_argument(
        "--analyze-every",
        type=float,
        default=0.0,
        help="PostgreSQL: analyse the schema's tables by autovacuum's rule every this many "
        "seconds while the server runs (bench/auto_analyze.py; the test server has autovacuum "
        "off; default 0: never, as before decision 0090)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="alternate the runs this many times")
    ap.add_argument("--groups", action="store_true", help="count documents per transaction")
    ap.add_argument("--profile", help="cProfile every thread of the server into this file")
    ap.add_argument("--stages", help="CPU per pipeline stage (bench/profiling/stages.py)")
    ap.add_argument(
        "--spread-births",
        action="store_true",
        help="each copy's patient a birth date of its own, as bench_ingest.py --spread-births "
        "and drain_cpu.py (default: the fixture's: every copy of a fixture's patient in one "
        "look-alike block of the patient index, compared with each earlier copy)",
    )
    args = ap.parse_args()
    fixtures = load_fixtures(load_consortium(Settings().config))
    copies = max(1, args.messages // len(fixtures))
    patients = Patients(spread_births=args.spread_births)
    counts = [int(w) for w in args.workers.split(",")]
    groups: list[int | None] = (
        [int(g) for g in args.group_max.split(",")] if args.group_max else [None]
    )
    defers: list[float | None] = (
        [float(d) for d in args.drain_defer.split(",")] if args.drain_defer else [None]
    )
    modes = [
        (a, d, f)
        for a in args.answer.split(",")
        for d in (args.drain.split(",") if a == "on-receipt" else ["server"])
        for f in (defers if (a, d) == ("on-receipt", "server") else [None])
    ]
    pools: list[int | None] = (
        [int(t) for t in args.translate_workers.split(",")] if args.translate_workers else [None]
    )
    modes = [(*m, t) for m in modes for t in pools]
    runs = [(w, g, r, m) for r in range(args.repeat) for w in counts for g in groups for m in modes]
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for workers, group, rep, (answer, drain, defer, pool) in runs if not args.no_sqlite else []:
            tag = f"s{workers}.{group}.{rep}.{answer[0]}{drain[0]}{defer}{pool}."
            url = f"sqlite:///{tmp / f'post-{tag}db'}"
            engine = make_engine(url)
            migrate(engine)
            engine.dispose()
            items = messages(fixtures, copies, tag, patients)
            run(
                "SQLite",
                url,
                tmp,
                items,
                workers,
                group,
                groups=args.groups,
                profile=args.profile,
                stages=args.stages,
                answer=answer,
                drain=drain,
                drain_batch=args.drain_batch,
                drain_defer=defer,
                translate_workers=pool,
                client=args.client,
            )
        if args.no_pg:
            return
        for workers, group, rep, (answer, drain, defer, pool) in runs:
            made = postgres_engine(args.pg)
            if isinstance(made, str):
                print(f"\n== PostgreSQL: skipped, {made}")
                return
            engine, drop = made
            analyzer = AutoAnalyze(engine, args.analyze_every) if args.analyze_every else None
            try:
                migrate(engine)
                if analyzer is not None:
                    analyzer.__enter__()
                tagged = engine.url.update_query_dict({"application_name": APP_NAME})
                run(
                    "PostgreSQL",
                    tagged.render_as_string(hide_password=False),
                    tmp,
                    messages(
                        fixtures,
                        copies,
                        f"p{workers}.{group}.{rep}.{answer[0]}{drain[0]}{defer}{pool}.",
                        patients,
                    ),
                    workers,
                    group,
                    groups=args.groups,
                    profile=args.profile,
                    stages=args.stages,
                    database=engine,
                    answer=answer,
                    drain=drain,
                    drain_batch=args.drain_batch,
                    drain_defer=defer,
                    translate_workers=pool,
                    client=args.client,
                )
            finally:
                if analyzer is not None:
                    analyzer.__exit__(None, None, None)
                    print(f"   tables analysed (autovacuum's rule): {analyzer.analyses}")
                drop()


if __name__ == "__main__":
    main()
