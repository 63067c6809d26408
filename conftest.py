"""Shared pytest set-up: source-tree imports, shared data paths, ROS domains."""
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

