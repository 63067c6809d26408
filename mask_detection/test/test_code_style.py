"""Code style of every Python file in the repository, with the ROS 2 linters' settings.

ament_flake8 and ament_pep257 wrap flake8 and pydocstyle; their settings (max line 99,
google import order, single quotes, the pep257 convention minus D100-D107, D203, D212,
D404) are in the repository's setup.cfg, so editors and these tests agree.
"""
from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.lint


def _python_files():
    skip = {'.venv', '.envs', 'build', 'install', 'log', '.git', 'demo_output'}
    return sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob('*.py')
                  if not skip.intersection(p.relative_to(ROOT).parts))


def _run(tool_args):
    result = subprocess.run([sys.executable, '-m', *tool_args, *_python_files()], cwd=ROOT,
                            capture_output=True, text=True)
    return result.returncode, (result.stdout + result.stderr).strip()


def test_there_are_files_to_check():
    files = _python_files()
    assert 'mask_detection/setup.py' in files
    assert 'conftest.py' in files


def test_flake8():
    code, output = _run(['flake8'])
    assert code == 0, f'flake8 found problems:\n{output}'


def test_pep257():
    code, output = _run(['pydocstyle'])
    assert code == 0, f'pydocstyle (pep257) found problems:\n{output}'
