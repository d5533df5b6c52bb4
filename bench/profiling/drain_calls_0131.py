"""Decision 0131: the drain's function calls per message in the server's drain process
against ``bench/drain_cpu.py`` alone, from two cProfile files: calls are counts a host's
load does not move (the CPU times beside them are not).

    # the server's drain process, whole life (bench/profiling/sitecustomize.py):
    BENCH_PROFILE_DRAIN_FILE=/tmp/server.prof PYTHONPATH=bench/profiling \\
        .venv/bin/python bench/bench_post_ingest.py --no-pg --messages 1000 \\
        --answer on-receipt --translate-workers 1 --spread-births
    # the same 990 messages' drain alone:
    .venv/bin/python bench/drain_cpu.py 33 --workers 1 --settled --unique-patients \\
        --profile --dump /tmp/alone.prof
    .venv/bin/python bench/profiling/drain_calls_0131.py /tmp/server.prof /tmp/alone.prof \\
        --messages 990 990

Prints the calls per message under ``drain_batch`` in each, and the functions whose calls
per message differ most (the server's profile also holds its start-up: mappings, runtime).
"""

from __future__ import annotations

import argparse
import pstats


def _calls(path: str) -> dict[tuple[str, int, str], tuple[int, float, float]]:
    stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
    return {key: (nc, tt, ct) for key, (_cc, nc, tt, ct, _callers) in stats.items()}


def _name(key: tuple[str, int, str]) -> str:
    path, line, func = key
    short = path.split("/site-packages/")[-1].split("/draincpu/")[-1]
    return f"{short}:{line}({func})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("server")
    ap.add_argument("alone")
    ap.add_argument("--messages", nargs=2, type=int, required=True, help="server alone")
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    server, alone = _calls(args.server), _calls(args.alone)
    ns, na = args.messages
    total_s = sum(v[0] for v in server.values()) / ns
    total_a = sum(v[0] for v in alone.values()) / na
    print(f"function calls per message: server's drain process {total_s:.0f}, alone {total_a:.0f}")
    for label, stats, n in (("server", server, ns), ("alone", alone, na)):
        for key, (nc, _tt, ct) in stats.items():
            if key[2] in ("drain_batch", "_store_batch", "_prepare_all", "_store_jobs"):
                print(f"  {label:6} {_name(key):70} calls {nc:5}  CPU {ct * 1000 / n:6.2f} ms/msg")
    rows = []
    for key in set(server) | set(alone):
        s = server.get(key, (0, 0.0, 0.0))[0] / ns
        a = alone.get(key, (0, 0.0, 0.0))[0] / na
        rows.append((s - a, s, a, key))
    rows.sort(key=lambda r: -abs(r[0]))
    print(f"\n{'server - alone':>14} {'server':>9} {'alone':>9}  calls per message")
    for diff, s, a, key in rows[: args.top]:
        print(f"{diff:14.2f} {s:9.2f} {a:9.2f}  {_name(key)}")


if __name__ == "__main__":
    main()
