"""Decision 0096's A/B in one process, alternated round by round (the order swapped each
round, process CPU time): this tree's code ("branch") against the base's functions
patched back in ("base": ``unread`` and ``_unread_parts`` executed from the base tree's
source, the tree-based ``filled_components``, ``_to_datetime`` without its memo, the
primitive check without ``_PASSED``). The host's load hits both variants alike.

    ADAPTER_AB_BASE=/work/wt/cpu-base .venv/bin/python bench/profiling/ab_cpu_0096.py \
        translate [ROUNDS]          # parse + map + check; first checks the outputs are equal
    ... bulk [ROUNDS] [COPIES]      # ingest_many, batches of 100, SQLite (temp file)
"""

import logging
import os
import sys
import tempfile
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path.cwd() / "bench"))
sys.path.insert(0, str(Path.cwd()))
from bench_ingest import load_fixtures, make_input, routed_settings

import adapter.hl7v2.message as message
import adapter.mapping.formats.hl7v2 as fmt
import adapter.mapping.functions.dates as dates
import adapter.pipeline.checks as checks
from adapter.consortium import load_consortium
from adapter.heap import settled
from adapter.pipeline.checks import check_resources
from adapter.pipeline.readers import read_document
from adapter.runtime import make_pipeline
from adapter.store import make_engine, migrate, session_factory

BASE = os.environ.get("ADAPTER_AB_BASE", "/work/wt/cpu-base")
base_fmt_src = Path(f"{BASE}/adapter/mapping/formats/hl7v2.py").read_text()
base_fmt = types.ModuleType("base_fmt")
base_fmt.__file__ = "base_fmt"
sys.modules["base_fmt"] = base_fmt
exec(compile(base_fmt_src, "base_hl7v2_format", "exec"), base_fmt.__dict__)


class _NoMemo(dict):
    def get(self, *a):
        return None


def tree_filled(self, field, rep=1):
    count = len(self.components(field, rep))
    return [c for c in range(1, count + 1) if any(self.subcomponents(field, rep, c))]


saved = dict(
    unread=fmt.Hl7v2Format.unread,
    parts=fmt._unread_parts,
    to_dt=dates._to_datetime,
    passed=checks._PASSED,
    filled=message.Segment.filled_components,
)


def use(which):
    if which == "base":
        fmt.Hl7v2Format.unread = base_fmt.Hl7v2Format.unread  # base's unread and _unread_parts
        message.Segment.filled_components = tree_filled
        dates._to_datetime = dates._convert_datetime
        checks._PASSED = _NoMemo()
    else:
        fmt.Hl7v2Format.unread = saved["unread"]
        message.Segment.filled_components = saved["filled"]
        dates._to_datetime = saved["to_dt"]
        checks._PASSED = saved["passed"]


logging.disable(logging.WARNING)


def translate_ab():
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        engine = make_engine(f"sqlite:///{Path(tmp) / 'd.db'}")
        migrate(engine)
        pipeline = make_pipeline(settings, consortium, session_factory(engine))

        def run(msgs):
            out = []
            for source_id, raw in msgs:
                facility, source = pipeline.consortium.source(source_id)
                mappings = pipeline.mapping_set(facility, source)
                doc = read_document("hl7v2", raw, max_bytes=pipeline.max_bytes)
                tr = doc.translate(mappings, facility, pipeline.timezone)
                issues = [*tr.issues, *check_resources(tr.resources, tr.origins, doc.locate)]
                out.append(
                    (
                        tr.resources,
                        [
                            (i.severity, i.code, i.diagnostics, i.location, i.expression)
                            for i in issues
                        ],
                    )
                )
            return out

        # same results both ways
        check_in = make_input(fixtures, 2, "same.", None)
        use("base")
        a = run(check_in)
        use("branch")
        b = run(check_in)
        assert a == b, "outputs differ"
        print(f"same resources and issues both ways for {len(check_in)} messages")
        times = {"base": [], "branch": []}
        with settled():
            for r in range(rounds):
                order = ("base", "branch") if r % 2 == 0 else ("branch", "base")
                for who in order:
                    msgs = make_input(fixtures, 4, f"r{r}{who}.", None)  # fresh texts each round
                    use(who)
                    t0 = time.process_time()
                    run(msgs)
                    t = time.process_time() - t0
                    times[who].append(1000 * t / len(msgs))
        for who, ts in times.items():
            ts2 = sorted(ts)
            every = " ".join(f"{t:.2f}" for t in ts)
            print(f"{who:6s} parse+map+check CPU ms/msg: median {ts2[len(ts2) // 2]:.3f}  {every}")
        print(f"load {os.getloadavg()[0]:.1f}")


def bulk_ab():
    from bench_ingest import bulk_ingest

    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    copies = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        engine = make_engine(f"sqlite:///{Path(tmp) / 'd.db'}")
        migrate(engine)
        pipeline = make_pipeline(settings, consortium, session_factory(engine))
        bulk = bulk_ingest(pipeline, 100)
        use("base")
        bulk(make_input(fixtures, 2, "warmA.", None))
        use("branch")
        bulk(make_input(fixtures, 2, "warmB.", None))
        times = {"base": [], "branch": []}
        with settled():
            for r in range(rounds):
                order = ("base", "branch") if r % 2 == 0 else ("branch", "base")
                for who in order:
                    msgs = make_input(fixtures, copies, f"r{r}{who}.", None)
                    use(who)
                    t0 = time.process_time()
                    bulk(msgs)
                    t = time.process_time() - t0
                    times[who].append(1000 * t / len(msgs))
        for who, ts in times.items():
            ts2 = sorted(ts)
            every = " ".join(f"{t:.2f}" for t in ts)
            print(
                f"{who:6s} bulk ingest (ingest_many, batches of 100) process CPU ms/msg: "
                f"median {ts2[len(ts2) // 2]:.2f}  mean {sum(ts) / len(ts):.2f}  all {every}"
            )
        wins = sum(b < a for a, b in zip(times["base"], times["branch"], strict=True))
        print(f"rounds where branch < base: {wins}/{rounds}; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    bulk_ab() if sys.argv[1:2] == ["bulk"] else translate_ab()
