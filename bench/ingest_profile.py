"""Where the hub's time goes during durable MQTT ingest: py-spy on the hub, by category.

Run: ``.venv/bin/pip install py-spy`` once (it is not a project dependency), then
``.venv/bin/python bench/ingest_profile.py`` (about 40 s). It runs one ``bench/ingest.py``
scenario against a fresh hub (``--devices``, default 100, window 8) and samples the hub
process with ``py-spy record --format raw --nonblocking`` during the measured window
only. py-spy charges time spent in C (OpenSSL through cffi, uvloop's socket calls, SQLite)
to the Python line that called it, so TLS shows up under ``adapters/tls.py`` and
``OpenSSL/``, and a PUBACK's ``send()`` under ``DeviceConnection._write_raw``.

Each sample is put in one bucket: first its thread (event loop, journal writer, routing
worker, other threads), then, on the event loop, the innermost frame that belongs to a
known layer (TLS, MQTT codec, IoT Hub dialect, journal, metrics, ...). ``--raw`` keeps
py-spy's file for flame graphs.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _peers import WellguardHub
from ingest import HEADER, run_scenario, show

THREADS = (
    ("journal writer thread (group commit, SQLite)", ("JournalWriter._run",)),
    ("journal WAL checkpointer thread", ("WalCheckpointer",)),
    (
        "routing worker (journal reads, telemetry store writes)",
        ("routing/", "telemetry_store", "Routing", "SqliteJournal.read", "decode_entries"),
    ),
    (
        "gateway executor (presence, counters, auth)",
        ("_flush_state", "PresenceWriter", "DeviceAuthenticator", "SecurityEventLog"),
    ),
    ("event loop", ("uvloop/__init__.py", "Runner.run", "DeviceConnection.")),
)

# Innermost matching frame wins; checked in this order for each frame.
LOOP_LAYERS = (
    ("TLS (pyOpenSSL in memory)", ("OpenSSL/", "adapters/tls.py")),
    ("MQTT codec + session (core/mqtt)", ("core/mqtt/",)),
    ("IoT Hub dialect, throttle, counters (core/gateway)", ("core/gateway/",)),
    ("journal submit + future resolution", ("adapters/journal/",)),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    ("message objects + clock", ("wellguard/model/", "__create_fn__", "utcnow")),
    ("HTTP API (uvicorn)", ("uvicorn/", "starlette/", "fastapi/", "apps/api/")),
    ("socket writes: PUBACKs, handshakes (transport.write)", ("DeviceConnection._write_raw",)),
    (
        "gateway glue (DeviceConnection, GatewayServer)",
        ("apps/gateway/", "DeviceConnection.", "GatewayServer.", "PresenceWriter."),
    ),
    ("uvloop itself (epoll, socket reads, callback dispatch)", ("Runner.run", "uvloop/")),
)


def thread_of(frames: list[str]) -> str:
    for name, marks in THREADS:
        if any(mark in frame for frame in frames for mark in marks):
            return name
    return "unattributed (truncated stacks, idle threads waking)"


def layer_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, marks in LOOP_LAYERS:
            if any(mark in frame for mark in marks):
                return name
    return "other (on the loop)"


def summarise(raw: Path, top: int) -> None:
    threads: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        thread = thread_of(frames)
        threads[thread] += n
        if thread == "event loop":
            layers[layer_of(frames)] += n
        leaves[frames[-1]] += n
    if not total:
        print("py-spy recorded no samples")
        return
    loop = threads["event loop"]
    print(f"\n{total} samples of the hub process; by thread:")
    for name, n in threads.most_common():
        print(f"  {n / total:6.1%}  {name}")
    print("event loop thread, by layer (innermost frame):")
    for name, n in layers.most_common():
        print(f"  {n / total:6.1%}  ({n / loop:5.1%} of the loop)  {name}")
    print(f"top {top} functions by own time (line level, C calls included):")
    for frame, n in leaves.most_common(top):
        print(f"  {n / total:6.1%}  {frame[:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--payload", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--raw", type=Path, default=None, help="keep py-spy's raw output here")
    parser.add_argument("--summarise", type=Path, default=None, help="only summarise this raw file")
    args = parser.parse_args()
    if args.summarise is not None:
        summarise(args.summarise, args.top)
        return
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")
    with tempfile.TemporaryDirectory(prefix="wg-ingest-profile-") as tmp:
        folder = Path(tmp)
        raw = args.raw or folder / "pyspy.txt"
        hub = WellguardHub.start(folder)
        recorder: list[subprocess.Popen[bytes]] = []

        def attach(seconds: float) -> None:
            recorder.append(
                subprocess.Popen(
                    [
                        spy,
                        "record",
                        "--pid",
                        str(hub.pid),
                        "--duration",
                        str(max(1, int(seconds))),
                        "--rate",
                        str(args.rate),
                        "--format",
                        "raw",
                        "--nonblocking",
                        "--output",
                        str(raw),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

        try:
            keys = hub.create_devices([f"bench-{i:06d}" for i in range(args.devices)])
            print(HEADER)
            figures = run_scenario(
                "wellguard", hub.target, hub.devices(keys), hub.pid, args, on_window=attach
            )
            show(figures)
            deadline = time.monotonic() + 30
            while recorder and recorder[0].poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            hub.stop()
        summarise(raw, args.top)


if __name__ == "__main__":
    main()
