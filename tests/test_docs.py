"""README.md and docs/*.md: every relative link and picture exists, every #anchor is a heading."""

import glob
import os
import re
import unicodedata

import pytest

from conftest import ROOT

PAGES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
# [text](target) and ![alt](target); the target ends at the first space or ")"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def anchors(text):
    """The #anchors a Markdown viewer such as GitHub's gives the headings of ``text``."""
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", text), re.MULTILINE):
        slug = "".join(ch for ch in heading.lower()
                       if ch in " -_" or unicodedata.category(ch)[0] in "LN")
        found.add(slug.replace(" ", "-"))
    return found


def links(page):
    text = open(page, encoding="utf-8").read()
    return text, LINK.findall(FENCE.sub("", text))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_relative_link_and_picture_resolves(page):
    text, targets = links(page)
    if page.endswith("README.md"):
        assert len(targets) > 5, "the README's links were not found: the pattern is wrong"
    for target in targets:
        if re.match(r"^[a-z]+:", target):  # https:, mailto: ...
            continue
        (path, _, anchor) = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        assert os.path.exists(resolved), f"{target}: {resolved} does not exist"
        if anchor:
            assert resolved.endswith(".md"), target
            assert anchor in anchors(open(resolved, encoding="utf-8").read()), \
                f"{target}: no heading makes #{anchor}"


def test_the_anchor_rule_matches_githubs():
    assert anchors("## Three recipes\n## What `train.py` writes\n## How far? `--recipe best`") \
        == {"three-recipes", "what-trainpy-writes", "how-far---recipe-best"}
