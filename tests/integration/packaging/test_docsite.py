# -*- coding: utf-8 -*-
"""`make docs`: tools/docsite.py builds the HTML site with antsibull-docs and
Sphinx, and any Sphinx warning fails the build.  Its index, opened in headless
Chromium as a reader would, links every module's page, every role's and every
guide's, and those pages exist."""

import glob
import os
import subprocess
import sys
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from helpers import REPO, VENV_BIN, chromium_dump_dom  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "tools"))
import docsite  # noqa: E402

MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, "plugins", "modules", "*.py"))
                 if not os.path.basename(p).startswith("_"))
ROLES = sorted(os.path.basename(os.path.dirname(os.path.dirname(p))) for p in
               glob.glob(os.path.join(REPO, "roles", "*", "meta", "argument_specs.yml")))


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag == "a" and dict(attrs).get("href"):
            self.hrefs.append(dict(attrs)["href"])
        self._in_title = tag == "title"

    def handle_data(self, data):
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag):
        self._in_title = False


def chromium_dom(url, profile):
    """The links and title of the page's DOM after Chromium loaded it."""
    parser = Links()
    parser.feed(chromium_dump_dom(url, profile))
    return parser


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    dest = tmp_path_factory.mktemp("docsite")
    proc = subprocess.run([os.path.join(VENV_BIN, "python"), os.path.join(REPO, "tools", "docsite.py"),
                           "--dest", str(dest)], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    assert proc.stderr == "", proc.stderr         # no warning of any tool either
    return dest / "build" / "html"


def test_the_index_links_every_module_role_and_guide(site, tmp_path):
    index = site / "index.html"
    dom = chromium_dom(index.as_uri(), tmp_path / "profile")
    assert "gentle.lb" in dom.title.lower()
    linked = set()
    for href in dom.hrefs:
        url = urlsplit(urljoin(index.as_uri(), href))
        if url.scheme == "file":
            linked.add(os.path.relpath(url.path, str(site)))
    expected = ["%s_module.html" % m for m in MODULES] + ["%s_role.html" % r for r in ROLES] + \
               ["docsite/%s.html" % name for _source, name in docsite.GUIDES]
    assert len(MODULES) >= 6 and len(ROLES) >= 2
    missing = [page for page in expected if page not in linked]
    assert not missing, "not linked from the index: %s" % missing
    for page in expected:
        assert (site / page).is_file(), page


def test_a_module_page_documents_the_module(site, tmp_path):
    page = site / "haproxy_member_module.html"
    dom = chromium_dom(page.as_uri(), tmp_path / "profile")
    assert "gentle.lb.haproxy_member" in dom.title
    text = page.read_text()
    for option in ("backend", "min_active", "wait_timeout"):
        assert 'id="parameter-%s"' % option in text, option


def test_guide_links_become_site_links(site):
    """A guide's link to another guide's heading is a link to that page's
    anchor, and a link to an example file is a download."""
    readme = (site / "docsite" / "readme.html").read_text()
    assert 'href="haproxy.html#ansible-collections-gentle-lb-docsite-haproxy-1-give-haproxy-an-admin-socket"' \
        in readme
    ee = (site / "docsite" / "execution_environment.html").read_text()
    assert "execution-environment.yml" in ee and "_downloads/" in ee
