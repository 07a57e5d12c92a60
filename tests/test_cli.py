"""The `doctoctoc` command end to end: run --once on the default config, contracts, errors.

Commands run in this process (`doctoctoc`); a new process (`doctoctoc_process`) only where
the process is the point: `python -m bot.cli` itself and the interpreter's traceback.
"""

from __future__ import annotations

import json
from email import message_from_bytes, policy

import click
import pytest

from bot.cli import cli

from .conftest import ROOT, doctoctoc, doctoctoc_process

CONFIG = ROOT / "config.yaml"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """`doctoctoc run --once` on the default config, in a fresh temporary directory."""
    cwd = tmp_path_factory.mktemp("demo")
    first = doctoctoc("run", "--once", "--config", str(CONFIG), cwd=cwd)
    return cwd, first


def test_run_once_on_default_config_writes_multipart_emails(demo_run):
    cwd, result = demo_run
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("72 new posts, ")
    assert "requests (" in summary and "written to outbox/" in summary
    emls = sorted((cwd / "outbox").glob("*.eml"))
    assert len(emls) >= 4
    for path in emls:
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert msg.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
        assert (
            msg["Message-ID"]
            and msg["Subject"]
            and msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        )
    assert (cwd / "doctoctoc.db").exists()


def test_second_run_and_digest_now_send_nothing_again(demo_run):
    cwd, _ = demo_run
    before = len(list((cwd / "outbox").glob("*.eml")))
    again = doctoctoc("run", "--once", "--config", str(CONFIG), cwd=cwd)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines()[-1].startswith("0 new posts, 0 requests (0 urgent)")
    digest = doctoctoc("digest", "--now", "--config", str(CONFIG), cwd=cwd)
    assert digest.returncode == 0 and "no digest due" in digest.stdout
    assert len(list((cwd / "outbox").glob("*.eml"))) == before


def test_export_posts_jsonl(demo_run):
    cwd, _ = demo_run
    result = doctoctoc("export", "posts", "--format", "jsonl", "--config", str(CONFIG), cwd=cwd)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 72
    first = records[0]
    for key in (
        "network",
        "id",
        "url",
        "author",
        "text",
        "lang",
        "created_at",
        "hashtags",
        "media",
        "reply_to",
        "deleted",
        "classification",
    ):
        assert key in first
    classified = [r for r in records if r["classification"]]
    assert classified and {
        "is_request",
        "specialty",
        "specialties",
        "urgency",
        "urgency_score",
    } <= set(classified[0]["classification"])
    replies = [r for r in records if r["reply_to"]]
    assert replies and all(
        r["classification"] is None for r in replies
    )  # replies are answers, never requests


def test_status_reports_sources_and_deliveries(demo_run):
    cwd, _ = demo_run
    result = doctoctoc("status", "--config", str(CONFIG), cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert "replay:bot/demo/sample.jsonl: healthy" in result.stdout
    assert "sent:" in result.stdout


def test_unsubscribe_token_from_a_digest(demo_run):
    cwd, _ = demo_run
    eml = next((cwd / "outbox").glob("*claire-martin*.eml"))
    link = message_from_bytes(eml.read_bytes(), policy=policy.default)["List-Unsubscribe"].strip(
        "<>"
    )
    result = doctoctoc("unsubscribe", link, "--config", str(CONFIG), cwd=cwd)
    assert result.returncode == 0 and "is unsubscribed" in result.stdout
    forged = doctoctoc("unsubscribe", link[:-3] + "xyz", "--config", str(CONFIG), cwd=cwd)
    assert forged.returncode == 1 and "not valid" in forged.stderr


def test_classify_contract(tmp_path):
    lines = [
        {
            "id": "a",
            "text": "Enfant 3 ans, éruption vésiculeuse fébrile, il est devant moi, varicelle ? #DocTocToc",
            "lang": "fr",
        },
        {
            "text": "Congrès de médecine générale à Lyon le 12 mars, inscriptions ouvertes ! #DocTocToc"
        },
        {
            "id": 7,
            "text": "ECG attached: is this Mobitz 2? patient in front of me #DocTocToc",
            "network": "x",
        },
    ]
    result = doctoctoc("classify", cwd=tmp_path, stdin="".join(json.dumps(x) + "\n" for x in lines))
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["id"] for o in out] == ["a", None, 7]
    for o in out:
        assert set(o) == {
            "id",
            "is_request",
            "specialty",
            "specialties",
            "urgency",
            "urgency_score",
        }
        assert len(o["specialties"]) == 3
        scores = [s["score"] for s in o["specialties"]]
        assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
        assert 0.0 <= o["urgency_score"] <= 1.0
        if o["is_request"]:
            assert o["specialty"] == o["specialties"][0]["id"] and o["urgency"] in (
                "routine",
                "soon",
                "urgent",
            )
        else:
            assert o["specialty"] is None and o["urgency"] is None
    assert out[0]["is_request"] and out[2]["is_request"] and not out[1]["is_request"]


def test_classify_rejects_malformed_input_with_its_line(tmp_path):
    result = doctoctoc("classify", cwd=tmp_path, stdin='{"text": "ok"}\nnot json\n')
    assert result.returncode == 1
    assert "line 2: not valid JSON" in result.stderr and "Traceback" not in result.stderr


def test_help_lists_every_command(tmp_path):
    result = doctoctoc("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in (
        "run",
        "collect",
        "digest",
        "check-config",
        "db",
        "export",
        "classify",
        "status",
        "unsubscribe",
        "block",
    ):
        assert f"  {command}" in result.stdout
    assert "--once" in doctoctoc("run", "--help", cwd=tmp_path).stdout


def test_check_config_exit_codes_and_messages(tmp_path):
    assert doctoctoc("check-config", str(CONFIG), cwd=tmp_path).returncode == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nhashtags: [DocTocToc]\nsubscribers:\n  - name: A\n    specialties: [dermato]\n"
    )
    result = doctoctoc("check-config", str(bad), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{bad}:5: subscribers[0].specialties[0]: 'dermato' is not a specialty" in result.stdout


def test_domain_error_is_one_message_without_traceback(tmp_path):
    result = doctoctoc("run", "--once", "--config", str(tmp_path / "missing.yaml"), cwd=tmp_path)
    assert result.returncode == 1
    assert "file not found" in result.stderr and "Traceback" not in result.stderr


def test_python_m_bot_cli_with_debug_shows_the_traceback(tmp_path):
    # In a new process: `python -m bot.cli` itself, and the interpreter's own traceback.
    debug = doctoctoc_process(
        "--debug", "run", "--once", "--config", str(tmp_path / "missing.yaml"), cwd=tmp_path
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_the_doctoctoc_console_script_is_bot_cli_main():
    import tomllib
    from importlib import import_module

    from bot.cli import main

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    module, _, name = scripts["scripts"]["doctoctoc"].partition(":")
    assert getattr(import_module(module), name) is main


def test_ctrl_c_during_a_command_says_aborted_without_a_traceback(tmp_path, monkeypatch):
    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr("bot.pipeline.Pipeline.collect", interrupted)
    result = doctoctoc("collect", "--config", str(CONFIG), cwd=tmp_path)
    # click turns Ctrl-C into Abort: "Aborted." and exit code 1
    assert result.returncode == 1 and result.stderr.strip() == "Aborted."


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path under `group`, groups included, walked from the click group."""
    out = [path]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            out += _commands(command, (*path, name))
        else:
            out.append((*path, name))
    return out


@pytest.mark.parametrize("path", _commands(cli), ids=lambda path: " ".join(path) or "doctoctoc")
def test_every_command_has_help(path, tmp_path):
    result = doctoctoc(*path, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    usage = result.stdout.splitlines()[0]
    assert usage.startswith(" ".join(("Usage: doctoctoc", *path)) + " "), usage


def test_readme_documents_every_config_key():
    from bot.core.config import _all_field_names
    from bot.core.config_models import Config

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = sorted(
        name
        for name in _all_field_names(Config)
        if not any(
            form in readme for form in (f"`{name}`", f".{name}`", f"`{name}.", f"`{name}[]`")
        )
    )
    assert missing == [], f"config keys missing from README.md: {missing}"
