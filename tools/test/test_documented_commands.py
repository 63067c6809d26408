"""Every command the docs give still exists: modules answer --help, files and targets exist.

The docs are read as they are, so a command that moves without its documentation fails here.
"""
import os
from pathlib import Path
import re
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / 'README.md', ROOT / 'BENCHMARKS.md',
        ROOT / 'mask_detection' / 'models' / 'MODEL_CARD.md']
# `python -m package.module` and `python path/to/script.py`, as written in the docs.
MODULE = re.compile(r'python3? -m ((?:training|benchmarks|demo|tools)(?:\.[a-z_]+)*)')
SCRIPT = re.compile(r'python3? ((?:[a-z_]+/)+[a-z_]+\.py)')
MAKE = re.compile(r'`make ([a-z]+)')


def _documented(pattern):
    found = {}
    for doc in DOCS:
        for match in pattern.finditer(doc.read_text()):
            found.setdefault(match.group(1), doc.name)
    return found


def test_the_docs_name_commands():
    # Guards the extraction itself: the docs do document these.
    assert {'training.train', 'training.evaluate', 'benchmarks.benchmark', 'demo'} <= set(
        _documented(MODULE))


@pytest.mark.parametrize('module', sorted(_documented(MODULE)))
def test_documented_module_answers_help(module):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), str(ROOT / 'mask_detection'), os.environ.get('PYTHONPATH', '')]))
    result = subprocess.run([sys.executable, '-m', module, '--help'], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (
        f'`python -m {module} --help` (documented in {_documented(MODULE)[module]}) failed:\n'
        f'{result.stderr[-2000:]}')
    assert 'usage' in result.stdout.lower()


@pytest.mark.parametrize('script', sorted(_documented(SCRIPT)))
def test_documented_script_exists(script):
    assert (ROOT / script).is_file(), f'{script} is documented but does not exist'


@pytest.mark.parametrize('target', sorted(_documented(MAKE)))
def test_documented_make_target_exists(target):
    makefile = (ROOT / 'Makefile').read_text()
    assert re.search(rf'^(?:[a-z ]+ )?{target}(?: [a-z ]+)?:', makefile, re.MULTILINE), (
        f'`make {target}` is documented but the Makefile has no such target')
