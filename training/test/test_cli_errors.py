"""Bad command lines of the training tools: one line naming the problem, no traceback (#18).

Each tool runs as `python -m training.X`, the way its docstring tells a user to run it.
"""
from pathlib import Path
import subprocess
import sys

import astronaut_data
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(module, *args, timeout=120):
    return subprocess.run([sys.executable, '-m', module, *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _assert_one_line_error(result, *expected):
    """Non-zero exit, the last stderr line names the problem, no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert 'Traceback' not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    for text in expected:
        assert text in last, result.stderr


def test_track_eval_split_file_that_does_not_exist(tmp_path):
    missing = tmp_path / 'no_such_split.json'
    _assert_one_line_error(_run('training.track_eval', '--split', missing),
                           f'--split {missing}', 'No such file')


def test_track_eval_split_file_that_is_not_json(tmp_path):
    not_json = tmp_path / 'notes.json'
    not_json.write_text('these are notes, not a split\n')
    _assert_one_line_error(_run('training.track_eval', '--split', not_json),
                           f'--split {not_json}', 'not a JSON split file')


@pytest.mark.parametrize('args, expected', [
    (['--channels', 'abc'], ["--channels: 'abc'", 'positive integers']),
    (['--channels', '16,-8'], ["--channels: '16,-8'", 'positive integers']),
    (['--input-size', '7'], ['--input-size 7', 'multiple of 8', '3 conv blocks']),
], ids=['channels not numbers', 'negative channel', 'input size not a multiple'])
def test_train_rejects_an_unusable_architecture_before_reading_data(tmp_path, args, expected):
    result = _run('training.train', '--data', tmp_path / 'no_data', '--out',
                  tmp_path / 'model.pt', *args)
    _assert_one_line_error(result, *expected)
    assert result.returncode == 2
    assert not (tmp_path / 'model.pt').exists()


def test_evaluate_checks_the_json_path_before_the_run(tmp_path):
    """A --json folder that cannot be created fails at once, not after a long evaluation."""
    a_file = tmp_path / 'a_file'
    a_file.write_text('')
    out = a_file / 'x.json'
    # --voc does not exist either: reaching the run would give another error.
    result = _run('training.evaluate', 'detect', '--voc', tmp_path / 'no_voc', '--json', out,
                  '--no-progress')
    _assert_one_line_error(result, f'--json {out}', 'cannot create its folder')
    assert 'no_voc' not in result.stderr


def test_evaluate_setting_of_the_wrong_type_names_the_setting(tmp_path):
    voc = astronaut_data.make_tiny_voc(tmp_path)
    result = _run('training.evaluate', 'detect', '--voc', voc, '--max-images', 1,
                  '--setting', 'detection_scale=abc', '--json', tmp_path / 'x.json',
                  '--no-progress')
    _assert_one_line_error(result, '--setting detection_scale=abc', 'float')
    assert not (tmp_path / 'x.json').exists()
