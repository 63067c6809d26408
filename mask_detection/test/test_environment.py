"""The project environment (scripts/in_env.sh): the distribution asked for, and the profile.

Fast DDS 2.x (Jazzy, Humble) reads FASTRTPS_DEFAULT_PROFILES_FILE, Fast DDS 3 (Kilted)
FASTDDS_DEFAULT_PROFILES_FILE; a wrong name is silently ignored, and on Kilted both names make
the RMW load the profile twice (XMLPARSER errors in every node's log).  What a process really
read shows in the shared-memory segment it maps: 16 MiB with the shipped profile, 512 KiB
without.
"""
from importlib import metadata
import os
import subprocess
import sys

from conftest import ros_domain_id
from graph_utils import REPO_ROOT
import pytest

from mask_detection import fastdds

IN_ENV = REPO_ROOT / 'scripts' / 'in_env.sh'
RCLPY_MAJOR = {'jazzy': '7', 'kilted': '9'}
PROFILE_VARIABLE = {'jazzy': 'FASTRTPS_DEFAULT_PROFILES_FILE',
                    'kilted': 'FASTDDS_DEFAULT_PROFILES_FILE'}
LARGE_SEGMENT = 16 * 1024 * 1024
PROBE = """
import os
import rclpy
from tools.ros_graph import shm_segment_sizes
rclpy.init(domain_id=int(os.environ['ROS_DOMAIN_ID']))
node = rclpy.create_node('profile_probe')
print(max(shm_segment_sizes(os.getpid())))
node.destroy_node()
rclpy.shutdown()
"""


def _clean_environment(**extra):
    """Return this process's environment without what in_env.sh is expected to set."""
    env = {name: value for name, value in os.environ.items()
           if name not in ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE',
                           'ROS_WHEELS', '_ROS_WHEELS_BOOTSTRAP_COMPLETE')}
    env.update(ROS_DOMAIN_ID=str(ros_domain_id()), **extra)
    return env


def test_the_environment_is_the_distribution_it_is_named_after():
    name = os.environ.get('MASK_DETECTION_ROS_ENV')
    if name is None:
        pytest.skip('not run through scripts/in_env.sh')
    if name.startswith('system-'):
        pytest.skip(f'a system ROS 2 ({name}): its rclpy is whatever is installed')
    assert metadata.version('ros-rclpy').split('.')[0] == RCLPY_MAJOR[name]
    assert fastdds.profile_variable()[0] == PROFILE_VARIABLE[name]
    assert os.path.realpath(REPO_ROOT / 'install') == str(REPO_ROOT / '.envs' / name / 'install')
    assert os.path.realpath(sys.prefix) == str(REPO_ROOT / '.envs' / name / 'venv')


@pytest.mark.graph
def test_in_env_gives_fast_dds_the_large_shm_profile():
    result = subprocess.run([str(IN_ENV), 'python', '-c', PROBE], env=_clean_environment(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[-1]) >= LARGE_SEGMENT, \
        f'the process did not read the profile: largest segment {result.stdout}'


def test_in_env_refuses_another_distribution_than_the_one_built():
    result = subprocess.run([str(IN_ENV), 'true'], env=_clean_environment(ROS_WHEELS='humble'),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "not 'humble'" in result.stderr and 'make setup ROS_WHEELS=humble' in result.stderr


@pytest.mark.parametrize('rmw_major, variable', [
    (6, 'FASTRTPS_DEFAULT_PROFILES_FILE'),      # Humble, Fast DDS 2.6
    (8, 'FASTRTPS_DEFAULT_PROFILES_FILE'),      # Jazzy, Fast DDS 2.14
    (9, 'FASTDDS_DEFAULT_PROFILES_FILE'),       # Kilted, Fast DDS 3.2
])
def test_exactly_the_variable_fast_dds_reads_is_set(rmw_major, variable):
    env = {'FASTRTPS_DEFAULT_PROFILES_FILE': '/user/choice.xml'}
    assert fastdds.set_profile(env, '/shipped.xml', rmw_major) == '/user/choice.xml'
    assert env == {variable: '/user/choice.xml'}
    env = {}
    fastdds.set_profile(env, '/shipped.xml', rmw_major)
    assert env == {variable: '/shipped.xml'}


def test_rmw_version_is_read_from_package_xml():
    assert fastdds.rmw_fastrtps_major('<package>\n  <version>8.4.3</version>') == 8
    with pytest.raises(ValueError, match='no <version>'):
        fastdds.rmw_fastrtps_major('<package/>')
