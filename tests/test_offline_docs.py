"""Data Docs point at local copies of every script, stylesheet, font and image they load.

The browser check (every page opened with the network cut) is in test_offline_artefacts.py;
these read the installed GX's own templates and the pages it writes.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import great_expectations
import pytest

from joinedup.quality import build_data_docs
from joinedup.quality.offline_docs import ASSETS, LOCAL, VENDOR, install_assets, make_offline

GX_VIEW = Path(great_expectations.__file__).parent / "render" / "view"
TEMPLATES = sorted((GX_VIEW / "templates").glob("*.j2")) + sorted(
    (GX_VIEW / "static" / "styles").glob("*.css")
)


class _Loads(HTMLParser):
    """What a page makes the browser fetch: script and image sources, linked styles, url()s."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("script", "img") and a.get("src"):
            self.urls.append(a["src"])
        elif tag == "link" and re.search(r"stylesheet|icon|preload", a.get("rel") or ""):
            self.urls.append(a["href"] or "")
        self._style = tag == "style"

    def handle_data(self, data: str) -> None:
        if self._style:
            self.urls += re.findall(r"""url\(\s*['"]?([^'")\s]+)""", data)

    def handle_endtag(self, tag: str) -> None:
        self._style = False


def _loads(html: str) -> list[str]:
    parser = _Loads()
    parser.feed(html)
    return [u for u in parser.urls if not u.startswith("data:")]


def test_the_scripts_gx_pins_by_hash_are_the_vendored_bytes() -> None:
    imports = (GX_VIEW / "templates" / "js_script_imports.j2").read_text()
    pinned = re.findall(r'src="([^"]+)" integrity="sha384-([^"]+)"', imports)
    assert len(pinned) >= 2
    for url, digest in pinned:
        local = ASSETS / LOCAL[url]
        assert base64.b64encode(hashlib.sha384(local.read_bytes()).digest()).decode() == digest


def test_every_remote_file_gx_templates_load_has_a_local_copy(tmp_path: Path) -> None:
    from joinedup.quality.offline_docs import offline_page

    docs = tmp_path / "docs"
    vendor = install_assets(docs)
    (docs / "static" / "images").mkdir(parents=True)
    (docs / "static" / "images" / "logo-long.png").write_bytes(b"png")
    remote = 0
    for template in TEMPLATES:
        text = template.read_text(encoding="utf-8")
        remote += len(re.findall(r'(?:src|href)="https?://[^"]*"|url\(.https?://', text))
        page = docs / "index.html"
        rewritten, unknown = offline_page(text, page, docs)
        assert unknown == [], (template.name, unknown)
        for url in _loads(rewritten):
            assert not re.match(r"https?:", url), (template.name, url)
            if "{" not in url:  # a Jinja expression GX fills in at render time
                assert (page.parent / url).is_file(), (template.name, url)
    assert remote > 15  # the templates were read: they name that many CDN files
    # Font Awesome's stylesheet loads its fonts relative to itself.
    css = vendor / "@fortawesome/fontawesome-free@6.6.0/css/all.min.css"
    fonts = re.findall(r"url\(([^)]+\.woff2)\)", css.read_text())
    assert fonts and all((css.parent / f).is_file() for f in fonts)


def test_an_unknown_remote_file_is_left_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    docs = tmp_path / "docs"
    (docs / "expectations" / "a").mkdir(parents=True)
    page = docs / "expectations" / "a" / "b.html"
    jquery = "https://code.jquery.com/jquery-3.7.1.min.js"
    page.write_text(
        f'<script src="{jquery}" integrity="sha384-x" crossorigin="anonymous"></script>'
        '<script src="https://cdn.example.org/new.js"></script>'
        '<a href="https://greatexpectations.io">a link is not loaded</a>'
    )
    with caplog.at_level(logging.WARNING, logger="joinedup.quality.offline_docs"):
        assert make_offline(docs) == [page]
    html = page.read_text()
    assert f'<script src="../../{VENDOR}/jquery@3.7.1/dist/jquery.min.js"></script>' in html
    assert "https://cdn.example.org/new.js" in html and "https://greatexpectations.io" in html
    assert "cdn.example.org/new.js" in caplog.text and "LOCAL" in caplog.text
    assert "greatexpectations.io" not in caplog.text


def test_only_pages_written_since_the_build_began_are_read(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    tag = '<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>'
    old, new = docs / "old.html", docs / "new.html"
    old.write_text(tag)
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    new.write_text(tag)
    assert make_offline(docs, since_ns=time.time_ns() - 60_000_000_000) == [new]
    assert old.read_text() == tag
    assert make_offline(docs) == [old]
    assert make_offline(docs) == []  # nothing left to rewrite


@pytest.mark.slow  # GX renders every committed suite: half a minute here
def test_built_data_docs_load_only_local_files(tmp_path: Path) -> None:
    index = build_data_docs(tmp_path)
    docs = index.parent
    pages = sorted(p for p in docs.rglob("*.html") if p.relative_to(docs).parts[0] != VENDOR)
    assert index in pages and len(pages) > 5
    for page in pages:
        urls = _loads(page.read_text(encoding="utf-8"))
        assert any(VENDOR in u for u in urls), page
        for url in urls:
            assert not re.match(r"https?:|//", url), (page, url)
            assert (page.parent / url.split("?")[0]).is_file(), (page, url)
