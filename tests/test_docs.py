"""The documentation's links: every relative link in README.md and docs/*.md names a file that is in the
repository, and every #anchor names a heading of its file (as GitHub spells heading anchors)."""
import glob
import os
import re
from collections import Counter

import pytest

from conftest import REPO_ROOT

LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')


def heading_anchors(path):
    """GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped, spaces to '-',
    '-1', '-2', ... after repeats. Headings inside code blocks do not count."""
    anchors, seen, in_code = set(), Counter(), False
    with open(path, encoding='utf-8') as handle:
        for line in handle:
            if line.startswith('```'):
                in_code = not in_code
            match = None if in_code else re.match(r'^#{1,6} (.*)', line)
            if match:
                anchor = re.sub(r'[^\w\- ]', '', match.group(1).strip().lower()).replace(' ', '-')
                anchors.add(anchor if not seen[anchor] else f'{anchor}-{seen[anchor]}')
                seen[anchor] += 1
    return anchors


def test_heading_anchors_are_githubs(tmp_path):
    page = tmp_path / 'p.md'
    page.write_text('# Results\n## On a GPU: one H100 (torch 2.11 + CUDA 13)\n```\n# not a heading\n```\n'
                    '## Data\n## Data\n### `tools/x.py` and impl=\'native\'\n')
    assert heading_anchors(page) == {'results', 'on-a-gpu-one-h100-torch-211--cuda-13', 'data', 'data-1',
                                     'toolsxpy-and-implnative'}


DOCS = ['README.md'] + sorted(os.path.relpath(p, REPO_ROOT) for p in glob.glob(os.path.join(REPO_ROOT, 'docs', '*.md')))


@pytest.mark.parametrize('doc', DOCS)
def test_relative_links_and_anchors_resolve(doc):
    path = os.path.join(REPO_ROOT, doc)
    with open(path, encoding='utf-8') as handle:
        text = re.sub(r'```.*?```', '', handle.read(), flags=re.S)  # commands in code blocks are not links
    broken = []
    for target in LINK.findall(text):
        if re.match(r'[a-z]+:', target):  # https:, mailto:
            continue
        file, _, anchor = target.partition('#')
        linked = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
        if not os.path.exists(linked):
            broken.append(f'{target}: no {os.path.relpath(linked, REPO_ROOT)}')
        elif anchor and linked.endswith('.md') and anchor not in heading_anchors(linked):
            broken.append(f'{target}: no heading with that anchor in {os.path.relpath(linked, REPO_ROOT)}')
    assert not broken, f'{doc}: ' + '; '.join(broken)
