"""`doctoctoc block` and `block --undo`: the author's posts stop and restart being routed."""

from __future__ import annotations

from click.testing import CliRunner

from bot.cli.admin import block
from bot.core.config import load_config
from digests.routing import blocked_handles


def test_block_and_unblock_an_author(tmp_path, db):
    config = tmp_path / "config.yaml"
    config.write_text(
        f"version: 1\ndatabase:\n  url: {db.url}\nhashtags: [DocTocToc]\n", encoding="utf-8"
    )
    loaded = load_config(str(config))
    runner = CliRunner()
    for _ in range(2):  # blocking twice is no error
        out = runner.invoke(block, ["@Spam@M.example", "--config", str(config)])
        assert out.exit_code == 0, out.output
        assert out.output == "spam@m.example blocked: posts kept, never routed\n"
    with db.session() as s:
        assert blocked_handles(s, loaded) == {"spam@m.example"}
    for _ in range(2):
        out = runner.invoke(block, ["spam@m.example", "--undo", "--config", str(config)])
        assert out.exit_code == 0 and out.output == "spam@m.example unblocked\n"
    with db.session() as s:
        assert blocked_handles(s, loaded) == set()
