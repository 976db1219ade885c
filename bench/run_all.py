"""Every benchmark in sequence with modest settings, then one summary table (``make bench``).

Run: ``.venv/bin/python bench/run_all.py`` (about 5 minutes on 2 cores). Each bench runs in
its own process and prints its own figures as it goes; the table at the end repeats the
headline ones, with Mosquitto's from the same run and the ratio where there is a peer
(install it with ``apt-get install -y mosquitto``; without it those columns stay empty).
Options pass smaller or larger settings through to the benches.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent


def run_bench(script: str, *args: str) -> tuple[str, int, float]:
    """Run ``bench/SCRIPT ARGS``, echoing its output; (output, exit status, seconds)."""
    print(f"\n=== {script} {' '.join(args)}", flush=True)
    started = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, str(BENCH / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    ) as process:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    return "".join(lines), process.returncode, time.perf_counter() - started


def _number(pattern: str, text: str) -> float | None:
    found = re.search(pattern, text)
    return float(found.group(1).replace(",", "")) if found else None


def _fmt(value: float | None, unit: str = "", digits: int = 0) -> str:
    if value is None or value != value:  # None or NaN
        return ""
    return f"{value:,.{digits}f}{unit}"


def _compared(
    ours: dict[str, Any], peer: dict[str, Any] | None, key: str, unit: str, digits: int
) -> tuple[str, str, str]:
    """Our figure, the peer's and their ratio, formatted (blank where missing)."""
    theirs = peer[key] if peer else None
    ratio = _fmt(ours[key] / theirs, "", 2) if theirs else ""
    return _fmt(ours[key], unit, digits), _fmt(theirs, unit, digits), ratio


def _pick(results: list[dict[str, Any]], server: str, devices: int) -> dict[str, Any] | None:
    return next((r for r in results if r["server"] == server and r["devices"] == devices), None)


def _ingest_rows(
    row: Callable[..., None], bench: str, ingest: dict[str, Any], *, ceiling: bool
) -> None:
    """Summary rows of one ``ingest.py --json`` result."""
    ceiling_figures = ingest.get("ceiling")
    if ceiling and ceiling_figures:
        row(
            bench,
            "generator ceiling (Mosquitto, no subscriber)",
            _fmt(ceiling_figures["rate"], " msg/s"),
        )
    results = ingest.get("results", [])
    for size in sorted({r["devices"] for r in results}):
        ours = _pick(results, "wellguard", size)
        peer = _pick(results, "mosquitto", size)
        if ours is None:
            continue
        ratio = ours["rate"] / peer["rate"] if peer and peer["rate"] else None
        row(
            bench,
            f"{size:,} devices, QoS 1 over TLS, durable",
            _fmt(ours["rate"], " msg/s"),
            _fmt(peer["rate"], " msg/s") if peer else "",
            _fmt(ratio, "", 2),
        )
        row(
            bench,
            f"{size:,} devices, server CPU per message",
            _fmt(ours["server_us"], " µs"),
            _fmt(peer["server_us"], " µs") if peer else "",
            _fmt(ours["server_us"] / peer["server_us"], "", 1)
            if peer and peer["server_us"]
            else "",
        )
        row(
            bench,
            f"{size:,} devices, publish→PUBACK p50 / p99",
            f"{ours['p50_ms']:.0f} / {ours['p99_ms']:.0f} ms",
            f"{peer['p50_ms']:.0f} / {peer['p99_ms']:.0f} ms" if peer else "",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingest-seconds", default="8", help="measured window per scenario")
    parser.add_argument("--connections", default="10000", help="idle connections to open")
    args = parser.parse_args()
    rows: list[tuple[str, str, str, str, str]] = []
    timings: list[tuple[str, float, int]] = []

    def row(bench: str, figure: str, ours: str, peer: str = "", ratio: str = "") -> None:
        rows.append((bench, figure, ours, peer, ratio))

    started = time.perf_counter()
    out, status, took = run_bench("mqtt_codec.py")
    timings.append(("mqtt_codec", took, status))
    row(
        "codec",
        "QoS 1 PUBLISH decode, 64 KiB reads",
        _fmt(_number(r"decode \(64 KiB reads\):\s+([\d,]+)", out), " pkt/s"),
    )
    row(
        "codec",
        "session ingest + PUBACK",
        _fmt(_number(r"session ingest \+ PUBACK:\s+([\d,]+)", out), " msg/s"),
    )

    out, status, took = run_bench("journal.py")
    timings.append(("journal", took, status))
    for mode in ("FULL", "NORMAL"):
        line = re.search(rf"^{mode}\s+saturated.*$", out, re.MULTILINE)
        text = line.group(0) if line else ""
        rate = _number(r"saturated\s+([\d,]+) msg/s", text)
        p99 = _number(r"p99\s+([\d.]+) ms", text)
        row(
            "journal",
            f"group commit, synchronous={mode}, 1000 producers",
            f"{_fmt(rate, ' msg/s')}  p99 {_fmt(p99, ' ms', 1)}" if rate else "",
        )

    with tempfile.TemporaryDirectory(prefix="wg-bench-") as tmp:
        for name, extra in (("ingest", ()), ("ingest, 2 workers", ("--hub-workers", "2"))):
            figures = Path(tmp) / "ingest.json"
            figures.unlink(missing_ok=True)
            _out, status, took = run_bench(
                "ingest.py", "--seconds", args.ingest_seconds, "--json", str(figures), *extra
            )
            timings.append((name, took, status))
            ingest: dict[str, Any] = json.loads(figures.read_text()) if figures.exists() else {}
            _ingest_rows(row, name, ingest, ceiling=not extra)

        figures = Path(tmp) / "connections.json"
        _out, status, took = run_bench(
            "connections.py", "--connections", args.connections, "--json", str(figures)
        )
        timings.append(("connections", took, status))
        idle: list[dict[str, Any]] = json.loads(figures.read_text()) if figures.exists() else []
        if idle:
            ours = idle[0]
            peer = idle[1] if len(idle) > 1 else None
            row(
                "connections",
                "idle TLS connections held",
                f"{ours['connected']:,} of {ours['asked']:,}",
                f"{peer['connected']:,}" if peer else "",
            )
            idle_rows = [
                ("RSS per idle connection", "kib_per_connection", " KiB", 1, ours, peer),
                ("TLS connect + auth burst", "connect_rate", " conn/s", 0, ours, peer),
                ("server CPU per connect", "server_ms", " ms", 2, ours, peer),
            ]
            again = ours.get("reconnect")
            if again:
                back = peer.get("reconnect") if peer else None
                idle_rows.append(
                    ("reconnect after an outage", "connect_rate", " conn/s", 0, again, back)
                )
                idle_rows.append(("server CPU per reconnect", "server_ms", " ms", 2, again, back))
            for figure, key, unit, digits, mine, theirs in idle_rows:
                row("connections", figure, *_compared(mine, theirs, key, unit, digits))

    table = Table(title="wellguard benchmarks (peer: Mosquitto, same run)")
    for column in ("bench", "figure", "wellguard", "Mosquitto", "ratio"):
        table.add_column(column, justify="right" if column in ("ratio",) else "left")
    for values in rows:
        table.add_row(*values)
    console = Console()
    if console.width < 110:  # not a terminal, or a narrow one: keep rows on one line
        console = Console(width=110)
    console.print()
    console.print(table)
    failed = [name for name, _took, status in timings if status != 0]
    spent = ", ".join(f"{name} {took:.0f} s" for name, took, _status in timings)
    console.print(f"time: {spent}; total {time.perf_counter() - started:.0f} s")
    if failed:
        console.print(f"[red]failed: {', '.join(failed)}[/red]")
        sys.exit(1)


if __name__ == "__main__":
    main()
