"""Train a zstd dictionary for stored resource bodies (decision 0049), audit record
bodies (``--audit``, decision 0072) or the patient index's features (``--features``,
decision 0082).

    .venv/bin/python scripts/train_body_dictionary.py --id 2026120401 [--size 16384]
    .venv/bin/python scripts/train_body_dictionary.py --audit --id 2026120501 --size 4096
    .venv/bin/python scripts/train_body_dictionary.py --features --id 2026120502 --size 4096
    .venv/bin/python scripts/train_body_dictionary.py --raw --id 2026120601 --size 16384

Samples: the resources of the golden outputs (fixtures/**/*expected*.json: what the
mappings produce from the fictitious fixtures), each with the meta the store stamps on it;
``--audit``: the audit records' canonical bodies of one ``adapter demo`` run (the example
consortium's fictitious messages, referral loop and deliveries) in a temporary folder;
``--features``: identity_record.features of a generated population
(tests/identity/population.py, seeded, fictitious), held out: those of an ``adapter demo``
run (the example fixtures' patients, another source); ``--raw``: inbound messages' received
bytes (inbound_message.raw, decision 0092): every HL7 v2 fixture (fixtures/**/*.hl7) but
the lab results of fixtures/hl7v2/oru, held out: they are what bench/bench_ingest.py sends,
so its figure is one on messages the dictionary has not seen.
Never train on a real store: the dictionary ships in the package and holds pieces of its
samples verbatim.

Writes adapter/data/body-dictionaries/<id>.zdict and refuses to overwrite one: a shipped
dictionary never changes, since stored bodies name it. To use a new one, add it to
``DICTIONARIES`` in adapter/store/body_codec.py and make it ``CURRENT``; old bodies keep
reading with theirs. Ids: zstd leaves 32768 .. 2**31 - 1 for private use; ours are a date
and a number (yyyymmddnn). Also prints the ratio on held-out samples (trained on every
other fixture folder, tested on the rest: the figure to expect on unseen dialects; audit:
the records of every other message, tested on the rest).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import orjson
import zstandard

from adapter.store.body_codec import json_bytes

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "adapter" / "data" / "body-dictionaries"
STAMP = {"versionId": "1", "lastUpdated": "2026-12-04T08:00:00.123+08:00"}


def stamped(resource: dict) -> dict:
    """As adapter/store/resources.py stores it: meta (versionId, lastUpdated) after id."""
    meta = {**(resource.get("meta") or {}), **STAMP}
    out: dict = {}
    for key, value in resource.items():
        if key != "meta":
            out[key] = value
            if key == "id":
                out["meta"] = meta
    out.setdefault("meta", meta)
    return out


def samples_by_folder() -> dict[str, list[bytes]]:
    """Stored-form bodies of the golden outputs, by fixture folder (format/kind)."""
    found: dict[str, list[bytes]] = defaultdict(list)
    for path in sorted(ROOT.glob("fixtures/**/*expected*.json")):
        folder = "/".join(path.relative_to(ROOT / "fixtures").parts[:2])
        data = json.loads(path.read_text(encoding="utf-8"))
        for resource in data.get("resources", []) if isinstance(data, dict) else []:
            found[folder].append(orjson.dumps(stamped(resource)))
    return found


def audit_samples_by_message() -> dict[str, list[bytes]]:
    """The audit bodies of one ``adapter demo`` run, by message (records about no message
    under "")."""
    found: dict[str, list[bytes]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="audit-dictionary-") as tmp:
        env = {**os.environ, "ADAPTER_DATABASE_URL": f"sqlite:///{tmp}/demo.db"}
        subprocess.run(
            [sys.executable, "-m", "adapter.cli", "demo", "--out", f"{tmp}/out"],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with sqlite3.connect(f"{tmp}/demo.db") as db:
            for message, body in db.execute("SELECT message_id, body FROM audit_record"):
                found[message or ""].append(json_bytes(body))  # plain or a frame
    return found


def _demo(tmp: str) -> sqlite3.Connection:
    """The store of one ``adapter demo`` run in ``tmp``."""
    env = {**os.environ, "ADAPTER_DATABASE_URL": f"sqlite:///{tmp}/demo.db"}
    subprocess.run(
        [sys.executable, "-m", "adapter.cli", "demo", "--out", f"{tmp}/out"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return sqlite3.connect(f"{tmp}/demo.db")


def features_samples() -> dict[str, list[bytes]]:
    """Two groups: "0-population" (what the dictionary is trained on: the features the
    index stores for a generated population, 1,500 persons, seed 11) and "1-demo" (held
    out: one ``adapter demo`` run's)."""
    sys.path.insert(0, str(ROOT / "tests" / "identity"))
    from population import population  # type: ignore[import-not-found]

    from adapter.identity.features import features_of
    from adapter.identity.rules import DEFAULT_RULES_FILE, load_rules

    rules = load_rules(DEFAULT_RULES_FILE)
    made = [
        orjson.dumps(features_of(item["patient"], item["facility"], rules).as_json())
        for item in population(1500, 11)
    ]
    with tempfile.TemporaryDirectory(prefix="features-dictionary-") as tmp, _demo(tmp) as db:
        demo = [json_bytes(f) for (f,) in db.execute("SELECT features FROM identity_record")]
    return {"0-population": made, "1-demo": demo}


def raw_samples_by_folder() -> dict[str, list[bytes]]:
    """The received bytes of the HL7 v2 fixtures by folder, fixtures/hl7v2/oru left out."""
    found: dict[str, list[bytes]] = defaultdict(list)
    for path in sorted(ROOT.glob("fixtures/**/*.hl7")):
        folder = "/".join(path.relative_to(ROOT / "fixtures").parts[:-1])
        if not folder.startswith("hl7v2/oru"):
            found[folder].append(path.read_bytes())
    return found


def train(samples: list[bytes], size: int, dict_id: int) -> zstandard.ZstdCompressionDict:
    return zstandard.train_dictionary(size, samples, dict_id=dict_id, level=3, threads=1)


def measure(dictionary: zstandard.ZstdCompressionDict, samples: list[bytes]) -> str:
    packer = zstandard.ZstdCompressor(level=3, dict_data=dictionary, write_checksum=True)
    started = time.perf_counter()
    frames = [packer.compress(s) for s in samples]
    took = (time.perf_counter() - started) / len(samples) * 1e6
    plain = sum(len(s) for s in samples)
    ratio = plain / sum(len(f) for f in frames)
    return f"{ratio:.2f}x ({plain / len(samples):.0f} bytes, {took:.1f} us)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--id", type=int, required=True, help="dictionary id (yyyymmddnn)")
    parser.add_argument("--size", type=int, default=16384, help="dictionary bytes")
    parser.add_argument("--audit", action="store_true", help="for audit record bodies")
    parser.add_argument("--features", action="store_true", help="for identity features")
    parser.add_argument("--raw", action="store_true", help="for inbound messages' bytes")
    args = parser.parse_args()
    if not 32768 <= args.id < 2**31:
        sys.exit("the id must be in zstd's private range 32768 .. 2**31 - 1")
    target = OUT / f"{args.id}.zdict"
    if target.exists():
        sys.exit(f"{target} exists: a shipped dictionary never changes; choose a new id")
    if args.features:
        by_folder = features_samples()
    elif args.raw:
        # ~120 messages: each given 8 times, as zstd's trainer wants more samples than that
        by_folder = {f: found * 8 for f, found in raw_samples_by_folder().items()}
    else:
        by_folder = audit_samples_by_message() if args.audit else samples_by_folder()
    folders = sorted(by_folder)
    held_in = [s for f in folders[0::2] for s in by_folder[f]]
    held_out = [s for f in folders[1::2] for s in by_folder[f]]
    # features: the dictionary is the population's alone (the demo's stay held out)
    everything = held_in if args.features else [s for f in folders for s in by_folder[f]]
    print(f"{len(everything)} samples from {len(folders)} groups")
    print(
        "held out (trained on half the groups):",
        measure(train(held_in, args.size, args.id), held_out),
    )
    no_dictionary = zstandard.ZstdCompressor(level=3)
    plain = sum(len(s) for s in held_out)
    ratio = plain / sum(len(no_dictionary.compress(s)) for s in held_out)
    print(f"held out, no dictionary: {ratio:.2f}x")
    dictionary = train(everything, args.size, args.id)
    OUT.mkdir(parents=True, exist_ok=True)
    target.write_bytes(dictionary.as_bytes())
    digest = hashlib.sha256(dictionary.as_bytes()).hexdigest()
    print(f"wrote {target.relative_to(ROOT)} ({len(dictionary.as_bytes())} bytes)")
    print(f'for DICTIONARIES: {args.id}: ("{target.name}", "{digest}"),')


if __name__ == "__main__":
    main()
