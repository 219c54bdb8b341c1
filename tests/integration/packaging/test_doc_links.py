# -*- coding: utf-8 -*-
"""The documentation a user reads -- README.md, docs/ and the roles' READMEs:

* every relative link leads to a file of the repository (never outside it),
  and every #anchor to a heading of its target, as a code forge renders it;
* the text describes the product, not how it was made.

Links are read with the same Markdown parser the docs site uses
(tools/docsite.py), so a link inside a code block is not a link here either.
"""

import glob
import os
import re
import sys

import pytest
from markdown_it.tree import SyntaxTreeNode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from helpers import REPO  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "tools"))
import docsite  # noqa: E402

USER_DOCS = sorted(["README.md"] + [os.path.relpath(p, REPO) for p in
                                    glob.glob(os.path.join(REPO, "docs", "**", "*.md"), recursive=True)
                                    + glob.glob(os.path.join(REPO, "roles", "*", "README.md"))])
# Words about how the project was built, which a product's docs have no use for.
MAKING_OF = re.compile(r"\bthe issue\b|\bissue said\b|Decisions where|(?-i:\bDESIGN\b)|shared/reference|\.\./shared/"
                       r"|\bthe lead\b|\bhelper session", re.I)


def links(path):
    """(href, line) of every link of a Markdown file."""
    with open(os.path.join(REPO, path)) as handle:
        tree = SyntaxTreeNode(docsite._parser().parse(handle.read()))
    found = []
    for node in tree.walk():
        if node.type == "inline":
            line = node.map[0] + 1 if node.map else 0
            found.extend((child.attrs["href"], line) for child in node.walk() if child.type == "link")
    return found


def anchors(path):
    with open(os.path.join(REPO, path)) as handle:
        return set(slug for slug, _text in docsite.heading_slugs(handle.read()))


def test_the_user_docs_are_all_checked():
    assert {"README.md", "docs/index.md", "docs/haproxy.md", "docs/awx/README.md",
            "roles/rolling_deploy/README.md", "roles/lvs_director/README.md"} <= set(USER_DOCS)


@pytest.mark.parametrize("path", USER_DOCS)
def test_relative_links_resolve_inside_the_repository(path):
    problems = []
    for href, line in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", href):
            continue                                  # https:, mailto:
        target, _hash, anchor = href.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(path), target)) if target else path
        where = "%s:%d: %s" % (path, line, href)
        if resolved.startswith(".."):
            problems.append("%s leaves the repository" % where)
        elif not os.path.exists(os.path.join(REPO, resolved)):
            problems.append("%s: %s does not exist" % (where, resolved))
        elif anchor:
            if not resolved.endswith(".md"):
                problems.append("%s: an anchor into a file that is not Markdown" % where)
            elif anchor not in anchors(resolved):
                problems.append("%s: %s has no heading with that anchor" % (where, resolved))
    assert not problems, "\n".join(problems)


def test_the_link_check_finds_a_broken_link_and_a_broken_anchor(tmp_path, monkeypatch):
    """The check itself: a file with one good link, a missing file and a wrong anchor."""
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## Good part\n\n[ok](#good-part) [gone](nosuch.md) [bad](#bad-part)\n"
                    "\n```md\n[in code](ignored.md)\n```\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", str(tmp_path))
    assert links("page.md") == [("#good-part", 5), ("nosuch.md", 5), ("#bad-part", 5)]
    with pytest.raises(AssertionError) as failed:
        test_relative_links_resolve_inside_the_repository("page.md")
    assert "nosuch.md does not exist" in str(failed.value) and "#bad-part" in str(failed.value)
    assert "#good-part" not in str(failed.value)


@pytest.mark.parametrize("path", USER_DOCS)
def test_docs_do_not_speak_of_their_making(path):
    with open(os.path.join(REPO, path)) as handle:
        hits = ["%s:%d: %s" % (path, number, line.strip()) for number, line in enumerate(handle, 1)
                if MAKING_OF.search(line)]
    assert not hits, "\n".join(hits)
