"""camera_node: source parsing, and the installed node on a real DDS graph."""
import functools
import http.server
import threading
import time

from conftest import ros_domain_id
import cv2
from graph_utils import GraphClient, NodeProcess, write_video
import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
import skimage.data

from mask_detection.camera_node import CaptureSource

ASTRONAUT = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope='module')
def astronaut_video(tmp_path_factory):
    """Write a 1 s, 20 fps lossless video of skimage's astronaut photo (512x512)."""
    return write_video(tmp_path_factory.mktemp('video') / 'astronaut.avi', ASTRONAUT, 20, 20.0)


def test_source_parsing(tmp_path):
    video = tmp_path / 'clip.avi'
    video.write_bytes(b'')
    assert CaptureSource.parse('0') == CaptureSource(0, cv2.CAP_ANY, False, True)
    assert CaptureSource.parse(' 2 ').target == 2
    assert CaptureSource.parse('/dev/video1').is_camera
    assert CaptureSource.parse(str(video)).is_file
    stream = CaptureSource.parse('rtsp://robot.local/stream')
    assert not stream.is_file and not stream.is_camera
    gstreamer = CaptureSource.parse('videotestsrc ! videoconvert ! appsink')
    assert gstreamer.api == cv2.CAP_GSTREAMER
    with pytest.raises(ValueError, match='source is empty'):
        CaptureSource.parse('  ')


def test_missing_file_is_rejected_but_devices_and_streams_are_not(tmp_path):
    missing = tmp_path / 'no_such_clip.avi'
    for source in (str(missing), 'no_such_clip_mask_detection_test.mp4', '/no/such/dir/clip'):
        with pytest.raises(ValueError, match=f"no such video file '{source}'"):
            CaptureSource.parse(source)
    # Retried as today: may appear later (plugged in, server started).
    assert CaptureSource.parse('/dev/video_mask_detection_test_missing').is_camera
    assert not CaptureSource.parse('http://127.0.0.1:9/missing.mp4').is_file
    assert not CaptureSource.parse('rtsp://robot.local/stream.mp4').is_file
    # OpenCV's image-sequence pattern is not a file name.
    assert not CaptureSource.parse(str(tmp_path / 'img_%04d.png')).is_file


def _stamp_seconds(msg):
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


@pytest.mark.graph
def test_publishes_resized_paced_frames_of_a_looping_file(astronaut_video, tmp_path):
    """bgr8 frames of the requested size, stamped at capture, at no more than fps."""
    domain = ros_domain_id()
    with GraphClient(domain) as client:
        images = client.collect(Image, 'cam/image_raw', RELIABLE)
        with NodeProcess('camera_node', domain, tmp_path, namespace='cam', params={
                'source': str(astronaut_video), 'frame_id': 'front_camera_optical',
                'width': 320, 'height': 240, 'fps': 10.0, 'loop': True}) as camera:
            # Fast DDS discovery on this machine takes 0.8 s or, at times, 3.6 s.
            assert client.spin_until(lambda: len(images) >= 2, timeout=20), camera.log()
            first = len(images)
            start = time.monotonic()
            client.spin_for(2.5)    # > 1 s: the 20-frame file wraps around at 10 Hz
            elapsed = time.monotonic() - start
            assert camera.running, camera.log()
            assert camera.stop() == 0, camera.log()
    rate = (len(images) - first) / elapsed
    assert rate <= 10.0 * 1.3, f'fps=10 not respected: {rate:.1f} Hz'
    assert rate >= 2.0, f'looping file stalled: {rate:.1f} Hz\n{camera.log()}'
    assert camera.count('opened .*astronaut.avi') >= 2, 'the file did not loop'
    assert 'resizing to 320x240' in camera.log()
    for msg in images:
        assert (msg.encoding, msg.width, msg.height, msg.step) == ('bgr8', 320, 240, 320 * 3)
        assert msg.header.frame_id == 'front_camera_optical'
    expected = cv2.resize(ASTRONAUT, (320, 240),
                          interpolation=cv2.INTER_AREA)
    pixels = np.frombuffer(images[-1].data, np.uint8).reshape(240, 320, 3)
    np.testing.assert_array_equal(pixels, expected)
    stamps = [_stamp_seconds(msg) for msg in images]
    assert all(later > earlier for earlier, later in zip(stamps, stamps[1:]))
    assert abs(stamps[-1] - time.time()) < 30, 'stamps are not capture (wall clock) times'


@pytest.mark.graph
def test_file_end_without_loop_exits_with_code_zero(astronaut_video, tmp_path):
    with NodeProcess('camera_node', ros_domain_id(), tmp_path,
                     params={'source': str(astronaut_video)}) as camera:
        exit_code = camera.wait(timeout=20)
    assert exit_code == 0, camera.log()
    assert 'end of video file' in camera.log()
    assert '(20 frames)' in camera.log()


@pytest.mark.graph
def test_missing_camera_is_retried_with_backoff(tmp_path):
    """A nonexistent device: the node stays up, logs each attempt, waits longer each time."""
    domain = ros_domain_id()
    with NodeProcess('camera_node', domain, tmp_path, params={
            'source': '/dev/video_mask_detection_test_missing',
            'reconnect_interval': 0.2}) as camera:
        # attempts at about 0, 0.2, 0.6, 1.4 s (doubling backoff), then 3.0 s
        assert camera.wait_for_log(r'cannot open source', timeout=20, count=3), camera.log()
        time.sleep(1.0)
        assert camera.running, camera.log()
        attempts = camera.count(r'cannot open source')
        assert 3 <= attempts <= 6, f'not a backoff ({attempts} attempts):\n{camera.log()}'
        assert 'retrying in 0.8 s' in camera.log()
        assert camera.stop() == 0, camera.log()


class _VideoServer:
    """Serve a directory over HTTP on a fixed local port; can be stopped and restarted."""

    def __init__(self, directory):
        self.handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                         directory=str(directory))
        self.handler.log_message = lambda *args: None
        self.port = None
        self.server = None

    def start(self):
        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', self.port or 0),
                                                      self.handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.mark.graph
def test_lost_stream_is_reconnected(astronaut_video, tmp_path):
    """A stream that ends or whose server goes away (an unplugged camera) is reopened."""
    server = _VideoServer(astronaut_video.parent)
    server.start()
    domain = ros_domain_id()
    try:
        with GraphClient(domain) as client:
            images = client.collect(Image, 'image_raw', RELIABLE)
            with NodeProcess('camera_node', domain, tmp_path, params={
                    'source': f'http://127.0.0.1:{server.port}/{astronaut_video.name}',
                    'reconnect_interval': 0.2}) as camera:
                # The 20-frame stream ends after each pass: lost, then reopened.
                assert client.spin_until(
                    lambda: images and camera.count('opened') >= 2, timeout=20), camera.log()
                assert 'lost source' in camera.log()
                server.stop()
                assert camera.wait_for_log('cannot open source', timeout=15, count=2), \
                    camera.log()
                assert camera.running
                server.start()
                images.clear()
                assert client.spin_until(lambda: images, timeout=20), camera.log()
                assert camera.stop() == 0, camera.log()
    finally:
        server.stop()


@pytest.mark.graph
def test_undecodable_file_is_an_error_exit(tmp_path):
    """An existing file that is not a video cannot get better: one error, non-zero exit."""
    not_a_video = tmp_path / 'notes.avi'
    not_a_video.write_text('this is not a video\n')
    with NodeProcess('camera_node', ros_domain_id(), tmp_path,
                     params={'source': str(not_a_video)}) as camera:
        exit_code = camera.wait(timeout=20)
    assert exit_code not in (0, None), camera.log()
    assert str(not_a_video) in camera.log()


@pytest.mark.graph
def test_missing_video_file_is_one_error_and_exit_code_one(tmp_path):
    """A file path that does not exist is not retried like a camera: one FATAL line, exit 1."""
    with NodeProcess('camera_node', ros_domain_id(), tmp_path,
                     params={'source': '/no/such.mp4', 'reconnect_interval': 0.2}) as camera:
        exit_code = camera.wait(timeout=20)
    fatal = [line for line in camera.log().splitlines() if '[FATAL]' in line]
    assert exit_code == 1, camera.log()
    assert len(fatal) == 1 and "no such video file '/no/such.mp4'" in fatal[0], camera.log()
    assert 'cannot open source' not in camera.log(), 'a missing file was retried'
    assert 'Traceback' not in camera.log()


@pytest.mark.graph
@pytest.mark.parametrize('params, expected', [
    ({'source': ''}, 'source is empty'),
    ({'frame_id': ''}, 'frame_id must not be empty'),
    ({'width': -1}, 'width'),
], ids=['empty source', 'empty frame_id', 'negative width'])
def test_bad_parameters_exit_with_one_clear_error(tmp_path, params, expected):
    with NodeProcess('camera_node', ros_domain_id(), tmp_path, params=params) as camera:
        exit_code = camera.wait(timeout=20)
    fatal = [line for line in camera.log().splitlines() if '[FATAL]' in line]
    assert exit_code == 1 and len(fatal) == 1 and expected in fatal[0], camera.log()
    assert 'Traceback' not in camera.log()
