"""Every node ends cleanly on SIGTERM and on one or two SIGINTs: exit code 0, no traceback.

Two SIGINTs is Ctrl-C on `ros2 launch`: the terminal signals the whole process group and
launch forwards another one (test_launch_files.py runs that for real).  The nodes are busy
(the camera plays a looping video that the detector processes) when the signals land.
"""
import signal
import time

from conftest import ros_domain_id
import cv2
from graph_utils import GraphClient, NodeProcess, write_video
import pytest
import skimage.data

from mask_detection import classifier
from mask_detection_msgs.msg import MaskDetectionArray

pytestmark = pytest.mark.graph

SIGNALS = {
    'SIGTERM': [signal.SIGTERM],
    'SIGINT': [signal.SIGINT],
    'two SIGINTs': [signal.SIGINT, signal.SIGINT],
    'SIGINT then SIGTERM': [signal.SIGINT, signal.SIGTERM],
}


@pytest.fixture(scope='module')
def running_graph_inputs(tmp_path_factory):
    """Return a looping video and the classifier model the detector loads."""
    folder = tmp_path_factory.mktemp('shutdown')
    frame = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    video = write_video(folder / 'astronaut.avi', frame, 20, 20.0)
    model = classifier.default_model_path()
    if not model.is_file():
        pytest.fail(f'the shipped model {model} is missing')
    return video, model


@pytest.mark.parametrize('signals', SIGNALS.values(), ids=SIGNALS.keys())
def test_nodes_exit_cleanly_on_signals(tmp_path, running_graph_inputs, signals):
    video, model = running_graph_inputs
    domain = ros_domain_id()
    with GraphClient(domain) as client:
        arrays = client.collect(MaskDetectionArray, 'detections')
        with NodeProcess('detector_node', domain, tmp_path, remaps={'image': 'image_raw'},
                         params={'model_path': str(model)}) as detector, \
                NodeProcess('camera_node', domain, tmp_path,
                            params={'source': str(video), 'loop': True}) as camera:
            assert client.spin_until(lambda: arrays, timeout=90), \
                detector.log_tail() + camera.log_tail()
            for node in (camera, detector):
                for signum in signals:
                    node.process.send_signal(signum)
                    time.sleep(0.02)
            exit_codes = {node.name: node.wait(timeout=20) for node in (camera, detector)}
    for node in (camera, detector):
        assert exit_codes[node.name] == 0, f'{node.name}: {exit_codes}\n{node.log()}'
        assert 'Traceback' not in node.log() and 'KeyboardInterrupt' not in node.log(), \
            node.log()
