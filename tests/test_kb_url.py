"""Knowledge-base articles carry an optional public URL from their front matter: load-kb stores
it, and AI replies cite it so the widget can link the source under the bubble."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from chatserver.__main__ import main
from chatserver.ai.knowledge import KnowledgeBase, parse_markdown, read_kb_dir, store_articles
from chatserver.keys import AI_SERVICE, DB_POOL

from .fake_groq import clear_kb

URL = "https://help.example.com/articles/export"


def test_front_matter_url_is_read_and_kept_out_of_the_body(tmp_path: Path) -> None:
    path = tmp_path / "export.md"
    path.write_text(f"---\nurl: {URL}\n# a comment\n---\n\n# Exporting\n\nUse File > Export.\n")
    assert parse_markdown(path) == ("export", "Exporting", "Use File > Export.", URL)


def test_quoted_front_matter_url_and_no_front_matter(tmp_path: Path) -> None:
    quoted = tmp_path / "quoted.md"
    quoted.write_text(f'---\nurl: "{URL}"\n---\n# Quoted\n\nBody.\n')
    assert parse_markdown(quoted).url == URL
    plain = tmp_path / "plain.md"
    plain.write_text("# Plain\n\n---\n\nA rule, not front matter.\n")
    assert parse_markdown(plain) == ("plain", "Plain", "---\n\nA rule, not front matter.", None)


@pytest.mark.parametrize("bad", ["javascript:alert(1)", "data:text/html,hi", "ftp://example.com/x", "https://a b"])
def test_a_url_other_than_http_is_refused_naming_the_file(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "bad.md"
    path.write_text(f"---\nurl: {bad}\n---\n# Bad\n\nBody.\n")
    with pytest.raises(ValueError, match=r"bad\.md"):
        parse_markdown(path)


async def test_stored_url_comes_back_in_the_citation_and_can_be_removed(client: TestClient, tmp_path: Path) -> None:
    await clear_kb(client)
    pool = client.app[DB_POOL]
    path = tmp_path / "export.md"
    path.write_text(f"---\nurl: {URL}\n---\n# Exporting notes\n\nExport every notebook as Markdown.\n")
    kb: KnowledgeBase = client.app[AI_SERVICE].knowledge
    assert (await store_articles(pool, read_kb_dir(tmp_path)))["inserted"] == 1
    [article] = await kb.search("how do I export my notebook", 3)
    assert article.citation() == {
        "id": article.id,
        "slug": "export",
        "title": "Exporting notes",
        "sections": ["Exporting notes"],
        "url": URL,
    }
    # Dropping the url from the file is a change like any other.
    path.write_text("# Exporting notes\n\nExport every notebook as Markdown.\n")
    assert (await store_articles(pool, read_kb_dir(tmp_path)))["updated"] == 1
    [article] = await kb.search("export notebook", 3)
    assert "url" not in article.citation()


def test_load_kb_refuses_a_bad_front_matter_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    monkeypatch.setenv("CHATSERVER_DATA_DIR", str(tmp_path))
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "evil.md").write_text("---\nurl: javascript:alert(1)\n---\n# Evil\n\nBody.\n")
    assert main(["load-kb", str(folder)]) == 2
    assert "evil.md" in capsys.readouterr().err
