"""Decision 0126: the translations of the bench's ORU input as JSON lines, for comparing two
trees byte for byte (resources, issues with location and expression, policies, origins,
mapping): ``cmp`` the outputs of two worktrees.

    .venv/bin/python bench/profiling/dump_translations_0126.py [COPIES] > out.jsonl

Each message (COPIES x 30, default 2) is translated twice, the second time with the memos
warm (concept maps, the check's passed values). The worktree's path is written as ``WT``.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path.cwd() / "bench"))
sys.path.insert(0, str(Path.cwd()))
from bench_ingest import load_fixtures, make_input, routed_settings

from adapter.consortium import load_consortium
from adapter.runtime import make_pipeline
from adapter.store import make_engine, session_factory


def main() -> None:
    logging.disable(logging.WARNING)
    copies = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    with tempfile.TemporaryDirectory() as tmp:
        settings = routed_settings(Path(tmp))
        engine = make_engine(f"sqlite:///{tmp}/t.db")
        consortium = load_consortium(settings.config)
        fixtures = load_fixtures(consortium)
        pipeline = make_pipeline(settings, consortium, session_factory(engine))
        translator = pipeline.translator
        sources = {s.id: (f, s) for f in consortium.facilities for s in f.sources}
        msgs = [(sources[sid], raw) for sid, raw in make_input(fixtures, copies, "t.", None)]
        for _ in range(2):
            for (facility, source), raw in msgs:
                o = translator.translate_for(raw, facility, source)
                line = json.dumps(
                    {
                        "format": o.format,
                        "encoding": o.encoding,
                        "failed": o.failed,
                        "resources": o.resources,
                        "issues": [i.as_dict() for i in o.issues],
                        "policies": [[list(k), v] for k, v in o.policies.items()],
                        "origins": [[list(k), v] for k, v in o.origins.items()],
                        "mapping": o.mapping,
                        "mapping_set": o.mapping_set,
                    },
                    ensure_ascii=False,
                    default=str,
                )
                print(line.replace(str(Path.cwd()), "WT"))
        engine.dispose()


if __name__ == "__main__":
    main()
