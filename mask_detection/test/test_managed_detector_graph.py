"""managed_detector_node on a real DDS graph: lifecycle transitions, failures, idle CPU.

Transitions go through `ros2 lifecycle set` when the ros2 CLI is installed (ros2lifecycle, from
../shared/ros2-tools), else through the node's lifecycle services (what the CLI calls).
"""
import os
import re
import shutil
import subprocess
import time

from conftest import ros_domain_id
import cv2
from graph_utils import GraphClient, node_environment, NodeProcess, write_video
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
import skimage.data

from mask_detection.image_codec import array_to_image_msg
from mask_detection_msgs.msg import MaskDetectionArray

ASTRONAUT = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
NODE = '/detector_node'
CPU_WINDOW_S = 10.0
# Deactivated, the node must be idle: below this share of one core while images keep coming.
IDLE_CPU_LIMIT = 0.05
RATE_LOG = r'publishing \d+x\d+ at ([\d.]+) Hz'
TRANSITIONS = {'configure': Transition.TRANSITION_CONFIGURE,
               'activate': Transition.TRANSITION_ACTIVATE,
               'deactivate': Transition.TRANSITION_DEACTIVATE,
               'cleanup': Transition.TRANSITION_CLEANUP,
               'shutdown': Transition.TRANSITION_INACTIVE_SHUTDOWN}


class Lifecycle:
    """Drive a node's lifecycle: through its services, or with ``cli`` the ros2 CLI.

    Each CLI call is a new process that must discover the node first (seconds on a loaded
    machine): the tests use the CLI for a few transitions, the services for the rest.
    """

    def __init__(self, client, domain, cli=False):
        self.client = client
        self.domain = domain
        self.cli = shutil.which('ros2') if cli else None
        assert self.cli or not cli, 'the ros2 CLI is missing: run make setup'

    def wait_for_node(self, timeout=30.0):
        service = self.client.node.create_client(GetState, f'{NODE}/get_state')
        try:
            assert self.client.spin_until(service.service_is_ready, timeout), \
                f'{NODE}/get_state not available after {timeout} s'
        finally:
            self.client.node.destroy_client(service)

    def set(self, transition):
        """Request a transition; return True if the node reports success."""
        if self.cli:
            output = self._ros2('set', transition)
            if 'Transitioning successful' in output:
                return True
            assert 'Transitioning failed' in output, output     # not a CLI/graph problem
            return False
        request = ChangeState.Request()
        request.transition.id = TRANSITIONS[transition]
        return self.client._call(ChangeState, f'{NODE}/change_state', request, 60.0).success

    def state(self):
        if self.cli:
            return self._ros2('get').split()[0]
        return self.client._call(GetState, f'{NODE}/get_state', GetState.Request(),
                                 10.0).current_state.label

    def _ros2(self, verb, *args):
        command = [self.cli, 'lifecycle', verb, '--no-daemon', '--spin-time', '2', NODE, *args]
        env = node_environment(self.domain)
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run(command, capture_output=True, text=True, env=env,
                                  timeout=90)
            output = done.stdout + done.stderr
            # The CLI's own node may not have discovered ours yet: ask again.
            if 'Node not found' not in output or time.monotonic() > deadline:
                return output
            time.sleep(0.5)


def _topics_state(client):
    """Return (detections publishers, image subscriptions) seen on the graph."""
    client.spin_for(0.3)
    node = client.node
    return node.count_publishers('/detections'), node.count_subscribers('/image')


def _wait_topics(client, expected, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = _topics_state(client)
        if seen == expected:
            return seen
    return _topics_state(client)


@pytest.mark.graph
def test_lifecycle_transitions_switch_topics_and_processing(tmp_path, model_path):
    domain = ros_domain_id()
    with GraphClient(domain) as client, NodeProcess(
            'managed_detector_node', domain, tmp_path,
            params={'model_path': str(model_path), 'face_detector': 'haar'}) as detector:
        arrays = client.collect(MaskDetectionArray, 'detections', RELIABLE)
        publisher = client.node.create_publisher(Image, 'image', RELIABLE)
        lifecycle = Lifecycle(client, domain)
        cli = Lifecycle(client, domain, cli=True)     # as a user would, for a few steps
        lifecycle.wait_for_node()

        def frames_processed(seconds=3.0):
            arrays.clear()
            deadline = time.monotonic() + seconds
            index = 0
            while time.monotonic() < deadline:
                index += 1
                image = array_to_image_msg(ASTRONAUT, 'bgr8')
                image.header.frame_id, image.header.stamp.sec = 'test', index
                publisher.publish(image)
                client.spin_for(0.1)
            return len(arrays)

        assert cli.state() == 'unconfigured'
        assert _wait_topics(client, (0, 0)) == (0, 0), 'unconfigured: no topic yet'
        assert cli.set('configure'), detector.log()
        assert cli.state() == 'inactive'
        assert _wait_topics(client, (1, 0)) == (1, 0), 'inactive: publishers, no subscription'
        assert frames_processed(1.0) == 0
        assert lifecycle.set('activate'), detector.log()
        assert lifecycle.state() == 'active'
        assert _wait_topics(client, (1, 1)) == (1, 1)
        assert frames_processed() > 0, detector.log()
        assert len(arrays[-1].detections) == 1, 'the astronaut was not found'
        assert lifecycle.set('deactivate'), detector.log()
        assert lifecycle.state() == 'inactive'
        assert _wait_topics(client, (1, 0)) == (1, 0), 'inactive: the subscription is gone'
        assert frames_processed() == 0, 'a deactivated node processed frames'
        assert lifecycle.set('activate') and frames_processed() > 0, detector.log()
        assert lifecycle.set('deactivate') and lifecycle.set('cleanup'), detector.log()
        assert lifecycle.state() == 'unconfigured'
        assert _wait_topics(client, (0, 0)) == (0, 0), 'cleaned up: no publisher left'
        assert cli.set('shutdown'), detector.log()
        assert cli.state() == 'finalized'
        assert detector.running, 'finalized is a state, not an exit'
        assert detector.stop() == 0, detector.log()
    assert 'Traceback' not in detector.log(), detector.log()


@pytest.mark.graph
def test_failed_configure_logs_the_reason_and_stays_unconfigured(tmp_path, model_path):
    domain = ros_domain_id()
    missing = tmp_path / 'missing_model.pt'
    with GraphClient(domain) as client, NodeProcess(
            'managed_detector_node', domain, tmp_path,
            params={'model_path': str(missing), 'face_detector': 'haar'}) as detector:
        lifecycle = Lifecycle(client, domain)
        lifecycle.wait_for_node()
        assert not lifecycle.set('configure')
        assert lifecycle.state() == 'unconfigured'
        assert detector.wait_for_log(r'\[ERROR\].*configure failed.*missing_model\.pt', 10), \
            detector.log()
        assert _wait_topics(client, (0, 0)) == (0, 0)
        # Parameters can be fixed while unconfigured; an unknown detector fails too.
        results = client.set_parameters(NODE, {'model_path': str(model_path),
                                               'face_detector': 'yolo'})
        assert all(result.successful for result in results), results
        assert not lifecycle.set('configure')
        assert detector.wait_for_log(r'configure failed.*yolo', 10), detector.log()
        assert client.set_parameters(NODE, {'face_detector': 'haar'})[0].successful
        assert lifecycle.set('configure'), detector.log()
        assert lifecycle.state() == 'inactive'
        assert detector.running
        assert detector.stop() == 0, detector.log()
    assert 'Traceback' not in detector.log(), detector.log()


def process_cpu_seconds(pid):
    """Return the user + system CPU time of process ``pid`` (all its threads), in s."""
    with open(f'/proc/{pid}/stat') as stat:
        fields = stat.read().rsplit(')', 1)[1].split()
    # Fields 14 and 15 of proc(5) (utime, stime); index 0 here is field 3 (state).
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def cpu_share(pid, seconds, wait=time.sleep):
    """Return the share of one core that process ``pid`` used over ``seconds``."""
    start_cpu, start = process_cpu_seconds(pid), time.monotonic()
    wait(seconds)
    return (process_cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)


@pytest.mark.graph
@pytest.mark.slow
def test_deactivated_detector_is_idle_while_the_camera_publishes_30_hz(tmp_path, model_path):
    """The node's own CPU time (/proc), so other load on the machine does not count."""
    frame = cv2.cvtColor(cv2.resize(skimage.data.astronaut(), (640, 480)), cv2.COLOR_RGB2BGR)
    video = write_video(tmp_path / 'astronaut.avi', frame, 30, 30.0)
    domain = ros_domain_id()
    with GraphClient(domain) as client, NodeProcess(
            'managed_detector_node', domain, tmp_path,
            params={'model_path': str(model_path), 'face_detector': 'haar'},
            remaps={'image': 'image_raw'}) as detector, NodeProcess(
            'camera_node', domain, tmp_path,
            params={'source': str(video), 'fps': 30.0, 'loop': True}) as camera:
        arrays = client.collect(MaskDetectionArray, 'detections', RELIABLE)
        lifecycle = Lifecycle(client, domain)
        lifecycle.wait_for_node()
        assert lifecycle.set('configure') and lifecycle.set('activate'), detector.log()
        assert client.spin_until(lambda: len(arrays) >= 5, timeout=40), \
            detector.log() + camera.log()
        active = cpu_share(detector.process.pid, 3.0, client.spin_for)
        assert lifecycle.set('deactivate'), detector.log()
        assert _wait_topics(client, (1, 0)) == (1, 0)
        client.spin_for(1.0)
        arrays.clear()
        rate_lines = camera.count(RATE_LOG)
        idle = cpu_share(detector.process.pid, CPU_WINDOW_S, client.spin_for)
        assert camera.running, camera.log()
        # camera_node's own count of what it published (every 5 s) during the window.
        rates = [float(rate) for rate in re.findall(RATE_LOG, camera.log())[rate_lines:]]
        assert rates, camera.log()
        camera_rate = min(rates)
        assert detector.stop() == 0, detector.log()
    print(f'\nmanaged_detector_node CPU: active {100 * active:.1f} % of one core, deactivated '
          f'{100 * idle:.2f} % over {CPU_WINDOW_S:g} s, camera {camera_rate:.1f} Hz')
    # The camera is asked for 30 Hz; on a loaded machine (other test runs) it gets less, which
    # does not matter here as long as images keep arriving at the idle node's door.
    assert camera_rate >= 5, f'the camera did not keep publishing ({camera_rate:.1f} Hz)'
    assert not arrays, 'detections while deactivated'
    assert idle < IDLE_CPU_LIMIT, f'deactivated node used {100 * idle:.1f} % of a core'
