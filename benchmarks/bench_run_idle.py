"""Benchmark: `doctoctoc run` for N minutes with 3 sources and 50 subscribers, one SMTP
server hanging the whole time.

Two fake Mastodon instances (tests/fakes/mastodon_server.py, real Mastodon.py client) and the
demo replay file are polled every minute; 50 subscribers: 25 by the outbox, 25 by an SMTP
server that accepts connections and never answers (smtp.timeout 60s). Measured: time from
start to the first collection; CPU time and peak RSS of the bot process over the idle
minutes; for statuses added while the SMTP server hangs, the time until they are stored
(collection latency) and until their outbox alert file exists (alert latency); /healthz and
/metrics answer.

    .venv/bin/python benchmarks/bench_run_idle.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.fakes is not an installed package

from tests.fakes.mastodon_server import FakeMastodon  # noqa: E402
from tests.fakes.smtp_server import free_port  # noqa: E402

COMMAND = ".venv/bin/python benchmarks/bench_run_idle.py"
URGENT = (
    "Nourrisson de 5 semaines, 38,9 °C, geignard, marbré, il est devant moi : "
    "on l'envoie aux urgences ? #DocTocToc"
)


def hanging_smtp(port: int) -> list[socket.socket]:
    server = socket.create_server(("127.0.0.1", port))
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            conn, _ = server.accept()
            held.append(conn)  # never answers

    threading.Thread(target=serve, daemon=True).start()
    return held


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS KiB) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    return cpu, rss


def stored(db: Path, text: str) -> bool:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT 1 FROM posts WHERE text LIKE ?", (f"%{text}%",)).fetchone()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    minutes = parser.parse_args().minutes

    work = Path(tempfile.mkdtemp(prefix="doctoctoc-idle-"))
    fakes = [FakeMastodon("med.example").start(), FakeMastodon("soins.example").start()]
    now = datetime.now(UTC)
    for i, fake in enumerate(fakes):
        fake.add_status(
            f"Cas {i} : éruption du tronc ? #DocTocToc", created_at=now - timedelta(hours=1)
        )
    smtp_port = free_port()
    held = hanging_smtp(smtp_port)
    metrics_port = free_port()
    subs = []
    for i in range(50):
        by = "outbox" if i % 2 == 0 else "smtp"
        subs.append(
            f"  - {{name: Dr {i}, id: dr{i}, email: dr{i}@example.org, deliver_by: [{by}], "
            "immediate: urgent, min_urgency: routine}"
        )
    (work / "config.yaml").write_text(
        f"""version: 1
database: {{url: "sqlite:///{work}/bot.db"}}
hashtags: [DocTocToc, DocTocTocPsy]
sources:
  - {{network: mastodon, url: "{fakes[0].url}", poll_every: 1m}}
  - {{network: mastodon, url: "{fakes[1].url}", poll_every: 1m}}
  - {{network: replay, url: "{ROOT}/bot/demo/sample.jsonl", poll_every: 1m}}
channels:
  outbox: {{dir: "{work}/outbox"}}
  smtp: {{host: 127.0.0.1, port: {smtp_port}, security: none, sender: bot@example.org, timeout: 60s}}
monitoring: {{port: {metrics_port}}}
subscribers:
"""
        + "\n".join(subs)
        + "\n",
        encoding="utf-8",
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    started = time.monotonic()
    bot = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run", "--config", str(work / "config.yaml")],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    first: list[float] = []

    def read() -> None:
        for line in bot.stdout:
            if "new posts" in line and not first:
                first.append(time.monotonic() - started)

    threading.Thread(target=read, daemon=True).start()
    try:
        while not first and time.monotonic() - started < 120:
            time.sleep(0.2)
        time.sleep(30)  # the first cycle's work (72 + 2 posts, alerts, hanging SMTP) settles
        cpu0, _ = proc_stats(bot.pid)
        t0 = time.monotonic()
        peak = 0
        latencies = []
        probes = max(1, int(minutes // 3))
        for n in range(probes):  # urgent statuses while the SMTP server hangs
            time.sleep(max(0.0, t0 + (n + 0.5) * minutes * 60 / probes - time.monotonic()))
            marker = f"sonde {n}"
            fakes[n % 2].add_status(f"{URGENT} ({marker})", created_at=datetime.now(UTC))
            added, got_post, got_mail = time.monotonic(), None, None
            while time.monotonic() - added < 180 and got_mail is None:
                if got_post is None and stored(work / "bot.db", marker):
                    got_post = time.monotonic() - added
                if any(marker in p.read_text() for p in (work / "outbox").glob("*alert*.eml")):
                    got_mail = time.monotonic() - added
                peak = max(peak, proc_stats(bot.pid)[1])
                time.sleep(0.25)
            latencies.append((got_post, got_mail))
        time.sleep(max(0.0, t0 + minutes * 60 - time.monotonic()))
        cpu1, rss = proc_stats(bot.pid)
        peak = max(peak, rss)
        health = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz").read()
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read()
        elapsed = time.monotonic() - t0
    finally:
        bot.terminate()
        bot.wait(timeout=30)
        for conn in held:
            conn.close()
        for fake in fakes:
            fake.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"first collection {first[0]:.1f} s after start" if first else "no collection seen")
    print(
        f"{elapsed / 60:.1f} min with 3 sources, 50 subscribers, SMTP hanging: CPU "
        f"{cpu1 - cpu0:.1f} s ({100 * (cpu1 - cpu0) / elapsed:.2f} % of one core), "
        f"RSS {rss / 1024:.0f} MiB (peak {peak / 1024:.0f} MiB)"
    )
    for n, (post, mail) in enumerate(latencies):
        fmt = lambda v: "not within 180 s" if v is None else f"{v:.1f} s"  # noqa: E731
        print(f"probe {n}: stored after {fmt(post)}, outbox alert after {fmt(mail)}")
    print(f"/healthz: {health.decode().strip()}; /metrics: {len(metrics.splitlines())} lines")
    print(f"reproduce: {COMMAND} --minutes {minutes:g}")


if __name__ == "__main__":
    main()
