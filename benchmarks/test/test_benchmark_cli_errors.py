"""Bad command lines of `python -m benchmarks.benchmark`: one line, exit 2, no traceback (#18)."""
from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run_benchmark(*args):
    return subprocess.run([sys.executable, '-m', 'benchmarks.benchmark', *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def _assert_usage_error(result, *expected):
    """Assert an argparse error: exit 2, the last stderr line names the problem, no traceback."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert 'Traceback' not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    for text in expected:
        assert text in last, result.stderr


def test_pipeline_images_folder_that_does_not_exist(tmp_path):
    missing = tmp_path / 'nonexistent'
    _assert_usage_error(_run_benchmark('pipeline', '--images', missing),
                        '--images', f'image folder {missing} does not exist')


def test_pipeline_images_that_is_a_file(tmp_path):
    a_file = tmp_path / 'photo.jpg'
    a_file.write_bytes(b'')
    _assert_usage_error(_run_benchmark('pipeline', '--images', a_file),
                        f'image folder {a_file} is not a folder')


@pytest.mark.parametrize('param, expected', [
    ('bogus:=1', "'bogus' is not a parameter of detector_node"),
    ('detection_scal:=0.5', 'did you mean detection_scale'),
    ('detection_scale=0.5', "expected NAME:=VALUE, got 'detection_scale=0.5'"),
], ids=['unknown', 'misspelt', 'no :='])
def test_ros_rejects_a_parameter_detector_node_does_not_have(param, expected):
    """The node would ignore it and the run would measure the defaults under another name."""
    _assert_usage_error(_run_benchmark('ros', '--param', param, '--duration', '1'),
                        '--param', expected)


@pytest.mark.parametrize('rate', ['0', '-30'])
def test_ros_rejects_rates_that_are_not_above_zero(rate):
    _assert_usage_error(_run_benchmark('ros', '--rates', '30', rate),
                        '--rates', f'must be above 0, got {rate}')
