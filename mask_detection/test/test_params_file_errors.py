"""A bad ``--ros-args --params-file`` stops every node with one FATAL line and exit code 1 (#18).

rcl alone only logs "Failed to parse global arguments", and the node then exited with 0.
"""
from conftest import ros_domain_id
from graph_utils import NodeProcess
import pytest

from mask_detection.node_runner import missing_params_files

NODES = ['camera_node', 'detector_node', 'managed_detector_node', 'greeter_node',
         'demo_recorder', 'viewer_node']


def test_missing_params_files_are_found_in_the_arguments(tmp_path):
    present = tmp_path / 'present.yaml'
    present.write_text('{}\n')
    argv = ['node', '--ros-args', '--params-file', str(present), '-p', 'a:=1',
            '--params-file', str(tmp_path / 'absent.yaml'), '--params-file', str(tmp_path)]
    assert missing_params_files(argv) == [str(tmp_path / 'absent.yaml'), str(tmp_path)]
    assert missing_params_files(['node', '--params-file']) == []


def _fatal_lines(process):
    return [line for line in process.log().splitlines() if '[FATAL]' in line]


@pytest.mark.graph
@pytest.mark.parametrize('executable', NODES)
def test_missing_params_file_is_one_fatal_line_and_exit_one(tmp_path, executable):
    missing = tmp_path / 'no_such_params.yaml'
    with NodeProcess(executable, ros_domain_id(), tmp_path,
                     args=['--ros-args', '--params-file', str(missing)]) as node:
        exit_code = node.wait(timeout=30)
    fatal = _fatal_lines(node)
    assert exit_code == 1, node.log()
    assert len(fatal) == 1 and f'--params-file {missing}: no such file' in fatal[0], node.log()
    assert 'Traceback' not in node.log() and '[ERROR]' not in node.log(), node.log()


@pytest.mark.graph
def test_params_file_that_is_not_valid_yaml_is_a_fatal_error(tmp_path):
    broken = tmp_path / 'broken.yaml'
    broken.write_text('camera_node:\n  ros__parameters: [unclosed\n')
    with NodeProcess('camera_node', ros_domain_id(), tmp_path,
                     args=['--ros-args', '--params-file', str(broken)]) as node:
        exit_code = node.wait(timeout=30)
    fatal = _fatal_lines(node)
    assert exit_code == 1, node.log()
    assert len(fatal) == 1 and f"Couldn't parse params file: '--params-file {broken}'" \
        in fatal[0], node.log()
    assert 'Traceback' not in node.log()
