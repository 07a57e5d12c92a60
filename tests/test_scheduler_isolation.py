"""Issue 12, "no global lock": an SMTP server that hangs delays only the e-mails. A Mastodon
source keeps collecting and the outbox alerts keep going out (fake clock, no sleeping: the
hanging server is released by the test)."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta

import pytest

from bot.core.config import load_config
from bot.pipeline import Pipeline
from bot.scheduler import BotRunner
from tests.conftest import FakeClock
from tests.fakes.mastodon_server import FakeMastodon
from tests.fakes.smtp_server import free_port

FIRST = (
    "Premier cas : patient de 58 ans, douleur thoracique depuis 40 min, sus-décalage ST "
    "en inférieur ? Avis cardio svp #DocTocToc"
)
SECOND = (
    "Second cas : nourrisson de 5 semaines, fièvre à 38,6 °C depuis ce matin, "
    "on fait quoi ? #DocTocToc"
)


class HangingSmtp:
    """Accepts connections and never says a word (no 220 greeting) until released."""

    def __init__(self):
        self.port = free_port()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.accepted = threading.Event()
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            while True:
                conn, _ = self.sock.accept()
                self.conns.append(conn)
                self.accepted.set()
        except OSError:
            pass

    def release(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.fixture
def hanging_smtp():
    server = HangingSmtp()
    yield server
    server.release()


def test_hanging_smtp_does_not_stop_collection_nor_other_channels(tmp_path, db, hanging_smtp):
    clock = FakeClock()
    with FakeMastodon() as fake:
        fake.add_status(FIRST, created_at=clock() - timedelta(hours=2))
        path = tmp_path / "config.yaml"
        path.write_text(
            f"""\
version: 1
hashtags: [DocTocToc]
sources:
  - {{network: mastodon, url: "{fake.url}", retries: 0, timeout: 5s}}
channels:
  outbox: {{dir: {tmp_path / "outbox"}}}
  smtp: {{host: 127.0.0.1, port: {hanging_smtp.port}, security: none, sender: bot@example.org,
          timeout: 60s}}
subscribers:
  - {{name: Mail, id: mail, email: m@example.org, deliver_by: [smtp], immediate: routine}}
  - {{name: File, id: file, deliver_by: [outbox], immediate: routine}}
""",
            encoding="utf-8",
        )
        loaded = load_config(path, env={})
        runner = BotRunner(loaded, db, echo=lambda _line: None)
        runner.pipeline.close()
        runner.pipeline = Pipeline(loaded, db, clock=clock, sleep=clock.sleep)
        runner.schedule()
        jobs = {job.id: job for job in runner.scheduler.get_jobs()}
        deliver_jobs = [j for i, j in jobs.items() if i.startswith("deliver")]
        [collect_job] = [j for i, j in jobs.items() if i.startswith("collect:")]

        # First cycle: the post of two hours ago goes to both subscribers.
        collect = threading.Thread(target=collect_job.func, args=collect_job.args)
        collect.start()
        collect.join(timeout=20)
        assert not collect.is_alive()
        delivering = [
            threading.Thread(target=j.func, args=j.args, daemon=True) for j in deliver_jobs
        ]
        for t in delivering:
            t.start()
        assert hanging_smtp.accepted.wait(timeout=20)  # an SMTP send now hangs
        # While it hangs, the source is collected again and its new post goes out by outbox.
        fake.add_status(SECOND, created_at=clock() - timedelta(minutes=5))
        clock.advance(minutes=2)
        again = threading.Thread(target=collect_job.func, args=collect_job.args)
        again.start()
        again.join(timeout=20)
        assert not again.is_alive(), "collection waited for the hanging SMTP server"
        outbox = [j for i, j in jobs.items() if i == "deliver:outbox"]
        for job in outbox:  # what the collect job wakes up; runs beside the SMTP one
            t = threading.Thread(target=job.func, args=job.args)
            t.start()
            t.join(timeout=20)
            assert not t.is_alive(), "the outbox waited for the hanging SMTP server"
        written = sorted((tmp_path / "outbox").glob("*.eml"))
        texts = "".join(p.read_text() for p in written)
        assert "Premier cas" in texts and "Second cas" in texts
        assert any(t.is_alive() for t in delivering)  # SMTP still hanging all along
        hanging_smtp.release()
        for t in delivering:
            t.join(timeout=20)
        runner.pipeline.close()
