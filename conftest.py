"""Shared pytest set-up: source-tree imports, shared data paths, ROS domains, a fresh install/."""
import functools
import hashlib
import os
from pathlib import Path
import random
import sys

import pytest

ROOT = Path(__file__).resolve().parent
# Test the source tree of the Python module, not a possibly stale install/ copy.
sys.path.insert(0, str(ROOT / 'mask_detection'))
sys.path.insert(0, str(ROOT))

SHARED_DATA = Path(os.environ.get('MASK_DETECTION_SHARED_DATA', ROOT.parent / 'shared' / 'data'))

# Each test run gets its own DDS domain so that concurrent runs on one machine
# (and other ROS users) never see each other's topics; graph tests take a fresh
# domain per test from ros_domain_id().
_domain_rng = random.Random(os.getpid())
_used_domains = set()


def ros_domain_id():
    """Return a DDS domain id not yet used in this test run (1..100)."""
    while True:
        domain = _domain_rng.randint(1, 100)
        if domain not in _used_domains or len(_used_domains) >= 100:
            _used_domains.add(domain)
            return domain


os.environ['ROS_DOMAIN_ID'] = str(ros_domain_id())
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'


def shipped_model_path():
    """Return the shipped classifier model file; fail (not skip) when it is missing.

    The model is committed (mask_detection/models/), so its absence is a broken checkout.
    """
    from mask_detection import classifier
    path = classifier.default_model_path()
    assert path.is_file(), f'the shipped model {path} is missing (it is committed to the repo)'
    return path


@pytest.fixture(scope='session')
def model_path():
    """Return the shipped classifier model: tests use the real trained model, never random ones."""
    return shipped_model_path()


def shared_dataset(name):
    """Return the path of a data set in ../shared/data, or skip the test saying why."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f'data set {name} not found at {path} (it lives in ../shared/data, '
                    'which is not part of the repository)')
    return path


# ---- install/ must match the source tree -------------------------------------------------
# Graph tests start the installed console scripts and read launch/config files from
# install/.../share (colcon copies them: no --symlink-install), so after an edit a plain pytest
# would test the old code.  Tests that use install/ fail, naming the files, until make setup.

PACKAGE_SOURCE = ROOT / 'mask_detection'
PACKAGE_INSTALL = ROOT / 'install' / 'mask_detection'
# (source folder, file patterns, installed folder relative to PACKAGE_INSTALL; a '*' in it is
# globbed, for the python3.X in lib/).
INSTALLED_COPIES = [
    ('mask_detection', ('*.py',), 'lib/python3*/site-packages/mask_detection'),
    ('launch', ('*.launch.py',), 'share/mask_detection/launch'),
    ('config', ('*.yaml', '*.xml'), 'share/mask_detection/config'),
    ('models', ('*.pt', '*.md'), 'share/mask_detection/models'),
    ('.', ('package.xml',), 'share/mask_detection'),
]


def _same_file(source, installed):
    if installed.resolve() == source.resolve():  # a symlink install
        return True
    if source.stat().st_size != installed.stat().st_size:
        return False
    return (hashlib.sha256(source.read_bytes()).digest()
            == hashlib.sha256(installed.read_bytes()).digest())


def stale_install_files(package_source=PACKAGE_SOURCE, package_install=PACKAGE_INSTALL):
    """Return what differs between the package's source files and install/ (empty if fresh)."""
    if not package_install.is_dir():
        return (f'{package_install} does not exist',)
    problems = []
    for source_dir, patterns, installed_pattern in INSTALLED_COPIES:
        matches = sorted(package_install.glob(installed_pattern))
        if not matches:
            problems.append(f'{package_install / installed_pattern} does not exist')
            continue
        installed_dir = matches[-1]
        sources = {p.name: p for pattern in patterns
                   for p in (package_source / source_dir).glob(pattern)}
        installed = {p.name: p for pattern in patterns for p in installed_dir.glob(pattern)}
        # Files only in install/ are left alone: colcon does not delete them, make setup could
        # not fix that, and nothing in the source tree imports them.
        for name in sorted(sources):
            label = f'mask_detection/{source_dir}/{name}'.replace('/./', '/')
            if name not in installed:
                problems.append(f'{label} (not installed)')
            elif not _same_file(sources[name], installed[name]):
                problems.append(f'{label} (differs from {installed[name]})')
    return tuple(problems)


def _uses_install(item):
    """Whether a test runs installed code: a graph test, or one of a module naming install/."""
    if item.get_closest_marker('graph') is not None:
        return True
    install = ROOT / 'install'
    return any(isinstance(value, Path) and install in value.parents
               for value in vars(getattr(item, 'module', None) or object()).values())


@functools.lru_cache(maxsize=None)
def _stale_install_of_this_checkout():
    return stale_install_files()  # once per test session


def pytest_runtest_setup(item):
    if _uses_install(item):
        stale = _stale_install_of_this_checkout()
        if stale:
            pytest.fail('install/ is stale: run make setup.  It differs from the source in:\n  '
                        + '\n  '.join(stale), pytrace=False)
