"""Data Docs that open with no network: their CDN scripts, styles and fonts served locally.

Great Expectations' page templates load bootstrap, jQuery, bootstrap-table, Font Awesome,
vega and more from CDNs, and the logo from S3 (with the page's build time and the context
id in the query string). In a secure data environment there is no internet, so the pages
lose their styling, filters and tables. After each build the pages GX wrote are rewritten
to point at local copies under ``DATA/quality/docs/vendor/``: the files vendored in
``vendor/`` (see its README.md for versions, sources and licences) and the vega
files Splink ships. The logo comes from the site's own ``static/images/``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
from pathlib import Path

from joinedup.atomic import write_text

log = logging.getLogger(__name__)

ASSETS = Path(__file__).with_name("vendor")
# Splink's own copies of vega, vega-lite and vega-embed, pinned by its release.
# (Found without importing Splink, which is slow to import and not otherwise needed here.)
SPLINK_JS = (
    Path(importlib.util.find_spec("splink").origin).parent / "internals" / "files" / "external_js"
)
VENDOR = "vendor"

_UNPKG = "https://unpkg.com/"
_JSDELIVR = "https://cdn.jsdelivr.net/npm/"
_CDNJS = "https://cdnjs.cloudflare.com/ajax/libs/"

# Every remote URL GX's templates load, and the file under vendor/ that replaces it.
# Versions are the templates' own: the same bytes the CDN serves (the two scripts GX pins
# with an integrity hash match it).
LOCAL: dict[str, str] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": (
        "bootstrap@4.3.1/dist/css/bootstrap.min.css"
    ),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": (
        "bootstrap@4.3.1/dist/js/bootstrap.min.js"
    ),
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery@3.7.1/dist/jquery.min.js",
    _CDNJS + "popper.js/1.12.9/umd/popper.min.js": "popper.js@1.12.9/dist/umd/popper.min.js",
    _CDNJS + "font-awesome/6.6.0/css/all.min.css": (
        "@fortawesome/fontawesome-free@6.6.0/css/all.min.css"
    ),
    _CDNJS + "bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker@1.9.0/dist/css/bootstrap-datepicker.min.css"
    ),
    _CDNJS + "bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker@1.9.0/dist/js/bootstrap-datepicker.min.js"
    ),
    _JSDELIVR + "@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css"
    ),
    **{
        _UNPKG + path: path
        for path in (
            "bootstrap-table@1.19.1/dist/bootstrap-table.min.css",
            "bootstrap-table@1.19.1/dist/bootstrap-table.min.js",
            "bootstrap-table@1.19.1/dist/extensions/filter-control/"
            "bootstrap-table-filter-control.min.js",
            "bootstrap-table@1.19.0/dist/extensions/filter-control/"
            "bootstrap-table-filter-control.css",
            "bootstrap-table@1.19.0/dist/extensions/filter-control/"
            "bootstrap-table-filter-control.min.css",
        )
    },
    # GX asks for the newest 5.x / 6.x; Splink's pinned copies are within those ranges.
    _JSDELIVR + "vega@5": "splink/vega@5",
    _JSDELIVR + "vega-lite@5": "splink/vega-lite@5",
    _JSDELIVR + "vega-embed@6": "splink/vega-embed@6",
}
_LOGO_HOST = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
# GX's images on S3, by the site's static/images/ file that stands in for each. GX ships
# no dark-theme logo (its dark-mode style loads one from S3), so dark mode shows the light.
_IMAGES = {"logo-long.png": "logo-long.png", "full_logo_dark.png": "logo-long.png"}

# A tag that makes the browser fetch something: a script, a stylesheet or icon, an image.
_TAG = re.compile(r"<(?:script|link|img)\b[^>]*>", re.IGNORECASE | re.DOTALL)
_URL = re.compile(r'\b(src|href)\s*=\s*"(https?://[^"]*)"', re.IGNORECASE)
# The <link> rels a browser fetches (not, say, rel="canonical").
_FETCHED_LINK = re.compile(r'rel\s*=\s*"[^"]*(stylesheet|icon|preload)', re.IGNORECASE)
# An image a style loads: GX's inline styles name the S3 logo.
_CSS_URL = re.compile(r"""url\(\s*(['"]?)(https?://[^'")\s]*)\1\s*\)""", re.IGNORECASE)
_FAVICON_PATH = "static/images/favicon.ico"
_FAVICON = re.compile(r'href="(?:\.\.?/)*' + re.escape(_FAVICON_PATH) + '"')
# A local file needs neither: with ``crossorigin`` Chromium refuses a file: script.
_CORS = re.compile(r'\s+(?:integrity|crossorigin)\s*=\s*"[^"]*"', re.IGNORECASE)


def _splink_file(major: str) -> Path:
    """Splink's copy of e.g. ``vega@5`` (shipped as ``vega@5.31.0``)."""
    name, version = major.split("@")
    found = sorted(SPLINK_JS.glob(f"{name}@{version}.*"))
    if not found:
        raise FileNotFoundError(
            f"Splink ships no {major}.x under {SPLINK_JS}: the Data Docs pages need it to "
            "open offline. Reinstall the locked environment (`make sync`)."
        )
    return found[-1]


def install_assets(docs: Path) -> Path:
    """Copy the vendored files into ``docs/vendor/`` where missing or changed; return it."""
    target = docs / VENDOR
    sources = {rel: ASSETS / rel for rel in LOCAL.values() if not rel.startswith("splink/")}
    sources |= {
        f"splink/{major}": _splink_file(major)
        for major in ("vega@5", "vega-lite@5", "vega-embed@6")
    }
    # Font Awesome's stylesheet loads its fonts relative to itself.
    fonts = ASSETS / "@fortawesome/fontawesome-free@6.6.0/webfonts"
    sources |= {str(f.relative_to(ASSETS)): f for f in sorted(fonts.glob("*.woff2"))}
    for rel, source in sources.items():
        dest = target / rel
        if dest.exists() and dest.stat().st_size == source.stat().st_size:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
    return target


def _local(url: str, page: Path, docs: Path) -> str | None:
    if url.startswith(_LOGO_HOST):
        # GX ships the same logo in the site's static/images/; the query string it adds
        # (build time, context id) would only have told a web server who opened the page.
        name = url.removeprefix(_LOGO_HOST).split("?")[0]
        if name not in _IMAGES:
            return None
        target = docs / "static" / "images" / _IMAGES[name]
    elif url in LOCAL:
        target = docs / VENDOR / LOCAL[url]
    else:
        return None
    return _relative(target, page)


def _relative(target: Path, page: Path) -> str:
    return Path(os.path.relpath(target, page.parent)).as_posix()


def offline_page(html: str, page: Path, docs: Path) -> tuple[str, list[str]]:
    """``html`` with every known remote asset pointed at its local copy; and the unknown."""
    unknown: list[str] = []

    def tag(match: re.Match[str]) -> str:
        text = match.group(0)

        def url(m: re.Match[str]) -> str:
            local = _local(m.group(2), page, docs)
            if local is None:
                if not text.lower().startswith("<link") or _FETCHED_LINK.search(text):
                    unknown.append(m.group(2))
                return m.group(0)
            return f'{m.group(1)}="{local}"'

        rewritten = _URL.sub(url, text)
        if rewritten != text:
            return _CORS.sub("", rewritten)
        # GX's validation pages name the favicon one folder short of the site's root
        # (great-expectations 1.24), so the browser's request for it fails.
        return _FAVICON.sub(f'href="{_relative(docs / _FAVICON_PATH, page)}"', text)

    def css_url(m: re.Match[str]) -> str:
        local = _local(m.group(2), page, docs)
        if local is None:
            unknown.append(m.group(2))
            return m.group(0)
        return f"url('{local}')"

    return _CSS_URL.sub(css_url, _TAG.sub(tag, html)), unknown


def make_offline(docs: Path, since_ns: int | None = None) -> list[Path]:
    """Point the Data Docs pages at local assets; only pages written since ``since_ns``.

    A gate renders only its own pages, so only those need reading (a page already
    rewritten has nothing left to rewrite). Returns the pages changed.
    """
    docs = Path(docs)
    if not docs.is_dir():
        return []
    install_assets(docs)
    changed = []
    for page in sorted(docs.rglob("*.html")):
        if VENDOR in page.relative_to(docs).parts[:1]:
            continue
        # A second's slack: file times come from a coarser clock than time.time_ns().
        if since_ns is not None and page.stat().st_mtime_ns < since_ns - 1_000_000_000:
            continue
        html = page.read_text(encoding="utf-8")
        new, unknown = offline_page(html, page, docs)
        for url in sorted(set(unknown)):
            log.warning(
                "Data Docs page %s loads %s, which has no local copy: it will not load with "
                "no network. Add it to joinedup.quality.offline_docs.LOCAL and vendor it.",
                page,
                url,
            )
        if new != html:
            write_text(new, page)
            changed.append(page)
    return changed
