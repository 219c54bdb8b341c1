"""Build gentle.lb's HTML documentation site (`make docs`).

    .venv/bin/python tools/docsite.py [--dest .cache/docsite]

The site is what antsibull-docs makes of the collection -- a page per module
and per role, from their DOCUMENTATION and argument specs -- plus the guides
(README.md, docs/*.md, docs/awx/README.md) as the collection's extra docs.
The guides are written in Markdown, which reads well in a checkout and on a
code forge; antsibull-docs takes extra docs in reStructuredText only, so they
are converted here, into the installed copy the site is built from:

1. the collection is built and installed as it ships (ansible-galaxy) into
   DEST/collections;
2. every guide becomes docs/docsite/rst/<page>.rst of that copy, listed in a
   docs/docsite/extra-docs.yml written beside it (docs/docsite/links.yml is
   the repository's own);
3. ``antsibull-docs collection`` writes the RST tree into DEST/rst;
4. files the guides link to that are not guides (an example .yml) are copied
   beside it, for Sphinx's download role;
5. ``sphinx-build -W`` (any warning fails the build) writes
   DEST/build/html; DEST/build/html/index.html is the collection's index.

docs.ansible.com is not reachable from every build machine, so the labels the
generated pages use from it (common return values, configuration settings)
come from a small local intersphinx inventory with their docs.ansible.com
addresses.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path

import yaml
from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode
from pygments.lexers import get_lexer_by_name
from pygments.token import Error
from pygments.util import ClassNotFound

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
COLLECTION = "gentle.lb"
LABEL_PREFIX = "ansible_collections.gentle.lb.docsite."

# The guides, in the order of the site's "Guides" section: (source, page name).
GUIDES = [
    ("README.md", "readme"),
    ("docs/index.md", "index"),
    ("docs/haproxy.md", "haproxy"),
    ("docs/ipvs.md", "ipvs"),
    ("docs/lvs_director.md", "lvs_director"),
    ("docs/f5.md", "f5"),
    ("docs/rolling_deploy.md", "rolling_deploy"),
    ("docs/awx/README.md", "awx"),
    ("docs/execution-environment.md", "execution_environment"),
    ("docs/troubleshooting.md", "troubleshooting"),
]
# A link to a role's README leads to the role's page.
ROLE_READMES = {"roles/%s/README.md" % role: role for role in ("rolling_deploy", "lvs_director")}

# Labels of docs.ansible.com that antsibull-docs' pages refer to, and where they are.
ANSIBLE_DOCS = "https://docs.ansible.com/projects/ansible/devel/"
ANSIBLE_LABELS = {
    "common_return_values": ("reference_appendices/common_return_values.html#common-return-values",
                             "Return Values"),
    "ansible_configuration_settings": ("reference_appendices/config.html#ansible-configuration-settings",
                                       "Ansible Configuration Settings"),
    # gentle.lb.member: an action plugin, described like ansible.builtin.package.
    "action_plugins": ("plugins/action.html#action-plugins", "Action plugins"),
    "ansible_collections.ansible.builtin.package_module": (
        "collections/ansible/builtin/package_module.html#ansible-collections-ansible-builtin-package-module",
        "ansible.builtin.package module"),
}

CONF_PY = '''# Written by tools/docsite.py.
project = "gentle.lb"
copyright = "gentle.lb developers"
title = "gentle.lb"
html_short_title = "gentle.lb"
extensions = ["sphinx.ext.intersphinx", "sphinx_antsibull_ext"]
pygments_style = "ansible"
highlight_language = "YAML+Jinja"
html_theme = "sphinx_ansible_theme"
html_show_sphinx = False
display_version = False
html_use_smartypants = True
html_use_modindex = False
html_use_index = False
html_copy_source = False
# A local inventory (written beside this file) instead of fetching docs.ansible.com's.
intersphinx_mapping = {"ansible_devel": (%r, (%r,))}
default_role = "any"
nitpicky = True
html_theme_options = {"topbar_links": {}, "show_extranav": False, "show_rtd_ethical_ads": False}
'''

HEADING_UNDERLINES = {1: "=", 2: "=", 3: "-", 4: "^", 5: '"', 6: "~"}
# How a paragraph may not start in RST (it would become a list, a field list,
# a quote, a comment...): such a start gets a backslash.
RISKY_START = re.compile(r"^(\S{1,4}[.)]|\(\S{1,4}\)|[-+*:>|#]|\.\.)(\s|$)")
RST_SPECIAL = re.compile(r"([\\*`|_\[\]<>])")


class DocsiteError(Exception):
    """A guide that cannot be converted, or a build step that failed."""


def github_slug(text: str) -> str:
    """The anchor a code forge gives a Markdown heading: lower case, without
    punctuation other than '-' and '_', spaces as '-'."""
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def heading_slugs(markdown: str) -> list[tuple[str, str]]:
    """(slug, heading text) of every heading of a Markdown text, in order,
    duplicates numbered the way the forge does (x, x-1, x-2)."""
    seen: dict[str, int] = {}
    result = []
    for node in SyntaxTreeNode(_parser().parse(markdown)).walk():
        if node.type != "heading":
            continue
        text = plain_text(node)
        slug = github_slug(text)
        if slug in seen:
            seen[slug] += 1
            slug = "%s-%d" % (slug, seen[slug])
        else:
            seen[slug] = 0
        result.append((slug, text))
    return result


def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def plain_text(node: SyntaxTreeNode) -> str:
    """The text of a node with all inline markup dropped."""
    if node.type in ("text", "code_inline"):
        return node.content
    if node.type in ("softbreak", "hardbreak"):
        return " "
    return "".join(plain_text(child) for child in node.children)


def escape(text: str) -> str:
    return RST_SPECIAL.sub(r"\\\1", text)


class Page:
    """One guide: its source path (relative to the repository), page name and headings."""

    def __init__(self, source: str, name: str):
        self.source = source
        self.name = name
        self.markdown = (REPO / source).read_text()
        self.slugs = heading_slugs(self.markdown)

    @property
    def label(self) -> str:
        return LABEL_PREFIX + self.name

    def anchor_label(self, slug: str) -> str:
        """The RST label of the heading ``slug`` (the page's own for its title)."""
        slugs = [s for s, _text in self.slugs]
        if slug not in slugs:
            raise DocsiteError("%s: no heading has the anchor #%s" % (self.source, slug))
        return self.label if slugs.index(slug) == 0 else "%s.%s" % (self.label, slug)


class Converter:
    """Markdown (CommonMark with tables) to RST, for what the guides use."""

    def __init__(self, page: Page, pages: dict[str, Page], downloads: dict[str, str]):
        self.page = page
        self.pages = pages              # source path -> Page
        self.downloads = downloads      # repository path -> path under the site's _files/
        self._slugs = iter(page.slugs)

    def convert(self) -> str:
        tree = SyntaxTreeNode(_parser().parse(self.page.markdown))
        lines = self.blocks(tree.children)
        return "\n".join(lines).rstrip() + "\n"

    def fail(self, node: SyntaxTreeNode, what: str):
        line = (node.map[0] + 1) if node.map else "?"
        raise DocsiteError("%s:%s: %s" % (self.page.source, line, what))

    # --- blocks: each returns a list of lines, ending with a blank line

    def blocks(self, nodes) -> list[str]:
        lines: list[str] = []
        for node in nodes:
            lines.extend(self.block(node))
        return lines

    def block(self, node: SyntaxTreeNode) -> list[str]:
        kind = node.type
        if kind == "heading":
            return self.heading(node)
        if kind == "paragraph":
            inline = node.children[0]
            text = self.inline(inline)
            starts_plain = inline.children and inline.children[0].type == "text"
            if starts_plain and RISKY_START.match(text):
                text = "\\" + text
            return [text, ""]
        if kind == "bullet_list":
            return self.bullet_list(node)
        if kind == "ordered_list":
            return self.ordered_list(node)
        if kind in ("fence", "code_block"):
            return self.code(node)
        if kind == "table":
            return self.table(node)
        if kind == "blockquote":
            return ["   " + line if line else "" for line in self.blocks(node.children)]
        if kind == "hr":
            return ["----", ""]
        self.fail(node, "a %s block has no RST form here; write it differently" % kind)
        return []

    def heading(self, node: SyntaxTreeNode) -> list[str]:
        slug, _text = next(self._slugs)
        level = int(node.tag[1])
        title = self.inline(node.children[0])
        label = self.page.anchor_label(slug)
        rule = HEADING_UNDERLINES[level] * max(len(title), 4)
        lines = [".. _%s:" % label, ""]
        if level == 1:
            lines.append(rule)
        return lines + [title, rule, ""]

    def items(self, node: SyntaxTreeNode, markers: list[str]) -> list[str]:
        lines: list[str] = []
        for marker, item in zip(markers, node.children):
            body = self.blocks(item.children) or [""]
            indent = " " * len(marker)
            lines.append(marker + body[0])
            lines.extend(indent + line if line else "" for line in body[1:])
            if lines[-1] != "":
                lines.append("")
        return lines

    def bullet_list(self, node: SyntaxTreeNode) -> list[str]:
        return self.items(node, ["* "] * len(node.children))

    def ordered_list(self, node: SyntaxTreeNode) -> list[str]:
        start = int(node.attrs.get("start", 1))
        return self.items(node, ["%d. " % (start + i) for i in range(len(node.children))])

    def code(self, node: SyntaxTreeNode) -> list[str]:
        content = node.content.rstrip("\n")
        language = lexer_for(node.info.strip().split(" ")[0] if node.type == "fence" else "", content)
        lines = [".. code-block:: %s" % language, ""]
        lines.extend("   " + line if line.strip() else "" for line in content.split("\n"))
        return lines + [""]

    def table(self, node: SyntaxTreeNode) -> list[str]:
        rows = [row for section in node.children for row in section.children]
        header_rows = len(node.children[0].children) if node.children[0].type == "thead" else 0
        lines = [".. list-table::", "   :header-rows: %d" % header_rows, ""]
        for row in rows:
            for index, cell in enumerate(row.children):
                text = self.inline(cell.children[0]) if cell.children else ""
                lines.append(("   * - " if index == 0 else "     - ") + text)
        return lines + [""]

    # --- inline: returns one line of RST

    def inline(self, node: SyntaxTreeNode) -> str:
        pieces = [self.inline_piece(child) for child in node.children]
        return join_inline(pieces).strip()

    def inline_piece(self, node: SyntaxTreeNode) -> tuple[str, bool]:
        """(RST, whether it is inline markup that needs word boundaries)."""
        kind = node.type
        if kind == "text":
            return escape(node.content), False
        if kind in ("softbreak", "hardbreak"):
            return " ", False
        if kind == "code_inline":
            return literal(node.content), True
        if kind in ("strong", "em", "s"):
            if any(child.type == "link" for child in node.walk()):
                return join_inline([self.inline_piece(child) for child in node.children]), False
            text = plain_text(node).strip()
            if kind == "s" or not text:
                return escape(text), False
            mark = "**" if kind == "strong" else "*"
            return mark + escape(text) + mark, True
        if kind == "link":
            return self.link(node), True
        self.fail(node, "inline %s has no RST form here (HTML? write it as `code`)" % kind)
        return "", False

    def link(self, node: SyntaxTreeNode) -> str:
        text = plain_text(node).strip()
        href = node.attrs["href"]
        if re.match(r"^[a-z][a-z0-9+.-]*:", href):
            return "`%s <%s>`__" % (escape(text), href)
        path, _hash, anchor = href.partition("#")
        if not path:
            target = self.page
        else:
            resolved = os.path.normpath(os.path.join(os.path.dirname(self.page.source), path))
            if resolved.startswith(".."):
                self.fail(node, "link %s leaves the repository" % href)
            if (REPO / resolved).is_dir():
                for index in ("index.md", "README.md"):
                    if os.path.join(resolved, index) in self.pages:
                        resolved = os.path.join(resolved, index)
                        break
            if resolved in ROLE_READMES:
                return ":ansplugin:`%s <%s.%s#role>`" % (role_text(text), COLLECTION, ROLE_READMES[resolved])
            if resolved not in self.pages:
                if not (REPO / resolved).is_file():
                    self.fail(node, "link %s: no such file in the repository" % href)
                self.downloads[resolved] = "_files/" + resolved
                depth = "../" * self.page_depth()
                return ":download:`%s <%s_files/%s>`" % (role_text(text), depth, resolved)
            target = self.pages[resolved]
        label = target.anchor_label(anchor) if anchor else target.label
        return ":ref:`%s <%s>`" % (role_text(text), label)

    def page_depth(self) -> int:
        """How deep the page's RST file is under the RST root (docsite/<page>.rst: 1)."""
        return 1


def role_text(text: str) -> str:
    """Text for an interpreted text role with an explicit target."""
    return text.replace("\\", "\\\\").replace("`", "\\`").replace("<", "\\<")


def literal(content: str) -> str:
    content = content.strip() or content
    if "``" in content or content != content.strip() or not content:
        return ":literal:`%s`" % role_text(content)
    return "``%s``" % content


def join_inline(pieces: list[tuple[str, bool]]) -> str:
    """Join inline pieces; markup next to a non-space character gets an
    escaped space ("\\ "), which RST needs to see it as markup and renders as
    nothing."""
    out = ""
    previous_markup = False
    for text, markup in pieces:
        if not text:
            continue
        if out and (markup or previous_markup) and not out[-1].isspace() and not text[0].isspace():
            out += "\\ "
        out += text
        previous_markup = markup
    return out


def lexer_for(language: str, content: str) -> str:
    """A Pygments lexer name that lexes ``content`` without errors, else 'text'
    (Sphinx warns about a block its lexer cannot read)."""
    names = {"": "text", "sh": "console" if content.lstrip().startswith("$ ") else "sh", "yaml": "yaml+jinja"}
    name = names.get(language, language)
    try:
        lexer = get_lexer_by_name(name)
    except ClassNotFound:
        return "text"
    if any(token is Error or token in Error for token, _value in lexer.get_tokens(content)):
        return "text"
    return name


# --- the build


def run(cmd: list[str], **kwargs) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise DocsiteError("%s failed (rc=%d):\n%s%s"
                           % (" ".join(cmd[:3]), proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:]))
    return proc.stdout + proc.stderr


def tool_env(collections: Path) -> dict[str, str]:
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               ANSIBLE_NOCOLOR="1", PATH=str(BIN) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("PYTHONPATH", None)
    return env


def install_collection(dest: Path) -> Path:
    """Build and install the collection as it ships; return its installed root."""
    collections = dest / "collections"
    shutil.rmtree(collections, ignore_errors=True)
    build = dest / "tarball"
    shutil.rmtree(build, ignore_errors=True)
    env = tool_env(collections)
    run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(build), str(REPO)], env=env)
    tarball = next(build.glob("*.tar.gz"))
    run([str(BIN / "ansible-galaxy"), "collection", "install", str(tarball), "-p", str(collections)], env=env)
    return collections / "ansible_collections" / "gentle" / "lb"


def write_extra_docs(installed: Path) -> dict[str, str]:
    """Convert the guides into the installed copy's extra docs; return the
    downloads they link to (repository path -> site path)."""
    pages = {source: Page(source, name) for source, name in GUIDES}
    downloads: dict[str, str] = {}
    rst_dir = installed / "docs" / "docsite" / "rst"
    rst_dir.mkdir(parents=True, exist_ok=True)
    for page in pages.values():
        (rst_dir / (page.name + ".rst")).write_text(Converter(page, pages, downloads).convert())
    index = {"sections": [{"title": "Guides", "toctree": [page.name for page in pages.values()]}]}
    (installed / "docs" / "docsite" / "extra-docs.yml").write_text(
        "# Written by tools/docsite.py from the Markdown guides.\n" + yaml.safe_dump(index, sort_keys=False))
    return downloads


def write_inventory(path: Path):
    """An intersphinx inventory (Sphinx's version 2 format) of ANSIBLE_LABELS."""
    entries = "".join("%s std:label -1 %s %s\n" % (label, uri, title)
                      for label, (uri, title) in sorted(ANSIBLE_LABELS.items()))
    header = "# Sphinx inventory version 2\n# Project: Ansible\n# Version: devel\n" \
             "# The remainder of this file is compressed using zlib.\n"
    path.write_bytes(header.encode() + zlib.compress(entries.encode()))


def build(dest: Path) -> Path:
    started = time.monotonic()
    dest = dest.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    installed = install_collection(dest)
    downloads = write_extra_docs(installed)

    rst, html = dest / "rst", dest / "build" / "html"
    shutil.rmtree(rst, ignore_errors=True)
    shutil.rmtree(dest / "build", ignore_errors=True)
    rst.mkdir()
    os.chmod(rst, 0o755)    # antsibull-docs wants it writable by its owner only
    env = tool_env(dest / "collections")
    run([str(BIN / "antsibull-docs"), "collection", "--use-current", "--squash-hierarchy", "--fail-on-error",
         "--dest-dir", str(rst), COLLECTION], env=env)
    for source, target in downloads.items():
        (rst / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / source, rst / target)

    inventory = dest / "ansible_devel.inv"
    write_inventory(inventory)
    (dest / "conf.py").write_text(CONF_PY % (ANSIBLE_DOCS, str(inventory)))
    output = run([str(BIN / "sphinx-build"), "-q", "-b", "html", "-W", "--keep-going", "-c", str(dest),
                  str(rst), str(html)], env=env)
    if output.strip():
        raise DocsiteError("sphinx-build printed:\n" + output)
    index = html / "index.html"
    print(json.dumps({"index": str(index), "seconds": round(time.monotonic() - started, 1)}))
    return index


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--dest", default=str(REPO / ".cache" / "docsite"),
                        help="work and output directory (default .cache/docsite)")
    args = parser.parse_args(argv)
    try:
        build(Path(args.dest))
    except DocsiteError as exc:
        print("docs site: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
