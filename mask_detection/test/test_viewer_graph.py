"""viewer_node on a real DDS graph: fed by a real detector_node, read over HTTP.

The detector gets real photos published by the test (scikit-image's astronaut) and uses the
shipped model; the viewer's page state, stream and start-up errors are checked over HTTP.
"""
import array
import re
import socket
import threading
import time

from conftest import ros_domain_id
import cv2
from graph_utils import GraphClient, NodeProcess
import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
import skimage.data

from mask_detection.drawing import COLORS
from tools.mjpeg_client import get, get_state, MjpegClient, StreamReaders

pytestmark = pytest.mark.graph

ASTRONAUT = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
URL_PATTERN = r'live view at (http://\S+/) '


def viewer_url(viewer, timeout=30.0):
    """Return the URL viewer_node logged (it listens on a free port in the tests)."""
    assert viewer.wait_for_log(URL_PATTERN, timeout), viewer.log()
    url = re.search(URL_PATTERN, viewer.log()).group(1)
    return url


def image_msg(frame, stamp):
    msg = Image(height=frame.shape[0], width=frame.shape[1], encoding='bgr8',
                step=frame.shape[1] * 3)
    msg.header.frame_id = 'viewer_test_camera'
    msg.header.stamp = stamp
    data = array.array('B')
    data.frombytes(np.ascontiguousarray(frame))
    msg.data = data
    return msg


class ImageFeed:
    """Publish the astronaut on ``image`` at ``rate`` Hz from a thread, freshly stamped."""

    def __init__(self, client, rate=15.0):
        self.client = client
        self.publisher = client.publisher(
            Image, 'image', QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE))
        self.period = 1.0 / rate
        self.published = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            stamp = self.client.node.get_clock().now().to_msg()
            self.publisher.publish(image_msg(ASTRONAUT, stamp))
            self.published += 1
            self._stop.wait(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(5.0)


def wait_until(predicate, timeout, period=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(period)
    return predicate()


def rss_kb(process):
    status = open(f'/proc/{process.process.pid}/status').read()
    return int(re.search(r'VmRSS:\s+(\d+) kB', status).group(1))


@pytest.fixture
def graph(tmp_path, model_path):
    """detector_node + viewer_node (port 0) in a fresh domain, and a test client there."""
    domain = ros_domain_id()
    with GraphClient(domain) as client, \
            NodeProcess('detector_node', domain, tmp_path,
                        params={'model_path': str(model_path)}) as detector, \
            NodeProcess('viewer_node', domain, tmp_path, params={
                'port': 0, 'max_fps': 15.0, 'client_timeout': 4.0}) as viewer:
        url = viewer_url(viewer)
        # VISITOR_APPEARED is sent once per visitor: wait until the viewer's subscriptions
        # and the detector's publishers are known on the graph before images flow.
        node = client.node
        assert wait_until(lambda: all(
            node.count_publishers(topic) >= 1 and node.count_subscribers(topic) >= 1
            for topic in ('/detections', '/visitor_events', '/diagnostics')), 60), \
            detector.log_tail() + viewer.log_tail()
        client.spin_for(1.0)
        yield client, detector, viewer, url
        assert viewer.running, viewer.log()


def test_viewer_shows_the_detectors_visitors_events_diagnostics_and_stream(graph):
    client, detector, viewer, url = graph
    # Nobody watches yet: the viewer does not ask the detector to draw.
    assert client.node.count_subscribers('/annotated_image') == 0
    page = get(url)[2].decode()
    assert 'no images yet' in page
    with ImageFeed(client):
        state = wait_until(lambda: (lambda s: s if s['visitors'] and s['events']
                                    and s['diagnostics'] else None)(get_state(url)), 60)
        if not state:
            last = get_state(url)
            pytest.fail(f"after 60 s: {len(last['visitors'])} visitors, {len(last['events'])} "
                        f"events, diagnostics {sorted(last['diagnostics'])}\n"
                        f'{detector.log_tail()}\n{viewer.log_tail()}')
        visitor = state['visitors'][0]
        assert visitor['track_id'] > 0 and visitor['label'] in (0, 1, 2)
        assert 0.0 <= visitor['confidence'] <= 1.0
        # The astronaut's face: upper middle of the 512x512 photo.
        assert 150 < visitor['x'] + visitor['width'] / 2 < 260, visitor
        assert 50 < visitor['y'] + visitor['height'] / 2 < 200, visitor
        assert visitor['since'] is not None and visitor['seconds_present'] >= 0
        appeared = [e for e in state['events'] if e['event_name'] == 'appeared']
        assert appeared and appeared[0]['track_id'] == visitor['track_id'], state['events']
        status = next(s for name, s in state['diagnostics'].items() if 'mask detector' in name)
        assert status['values']['face_detector'] and 'processed_rate_hz' in status['values']
        assert state['detections']['rate_hz'] > 0
        assert state['detections']['latency_ms_mean'] is not None

        stream = MjpegClient(int(url.rsplit(':', 1)[1].strip('/')))
        try:
            frames = [stream.read_frame() for _ in range(3)]
            assert wait_until(lambda: client.node.count_subscribers('/annotated_image') == 1,
                              10), 'the viewer did not subscribe annotated_image for a watcher'
            # jpeg_quality changes at run time (within its range only).
            size_before = len(stream.read_jpeg())
            results = client.set_parameters('/viewer_node', {'jpeg_quality': 10})
            assert results[0].successful, results[0].reason
            assert not client.set_parameters('/viewer_node', {'jpeg_quality': 0})[0].successful
            sizes_after = [len(stream.read_jpeg()) for _ in range(4)]
            assert sizes_after[-1] < 0.6 * size_before, (size_before, sizes_after)
        finally:
            stream.close()
        state = get_state(url)
    assert frames[-1].shape == ASTRONAUT.shape
    # The detector drew the box: its top edge has the label's colour (within JPEG error).
    visitor = state['visitors'][0] if state['visitors'] else visitor
    box_colour = np.array(COLORS[visitor['label']], float)
    top = frames[-1][visitor['y'] + 1, visitor['x'] + 5: visitor['x'] + visitor['width'] - 5]
    assert np.abs(top.astype(float) - box_colour).mean() < 60, (top[:5], box_colour)
    assert state['images']['received'] >= 3
    # The last stream viewer left: the viewer stops asking for annotated images.
    assert wait_until(lambda: client.node.count_subscribers('/annotated_image') == 0, 10)


@pytest.mark.slow
def test_twenty_clients_one_stalled_through_the_node(graph):
    client, detector, viewer, url = graph
    port = int(url.rsplit(':', 1)[1].strip('/'))
    with ImageFeed(client, rate=15.0):
        assert wait_until(lambda: get_state(url)['detections']['received'] > 0, 60), \
            detector.log_tail()
        readers = StreamReaders(port, 19, stalled=1)
        assert wait_until(lambda: all(readers.counts), 30), readers.counts
        rss_before = rss_kb(viewer)
        readers.reset_counts()
        state_seconds = []
        state = get_state(url)
        started = time.monotonic()
        # 8 s, and on until the stalled client is dropped (its buffers full, then 4 s).
        while time.monotonic() - started < 8.0 or (
                not state['stream']['clients_dropped'] and time.monotonic() - started < 30.0):
            before = time.monotonic()
            state = get_state(url)
            state_seconds.append(time.monotonic() - before)
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        counts = list(readers.counts)
        rss_after = rss_kb(viewer)
        readers.close(reset=True)
        after = wait_until(lambda: (lambda s: s if s['stream']['clients'] == 0 else None)(
            get_state(url)), 10)
    stream = state['stream']
    rates = [count / elapsed for count in counts]
    print(f'\n[viewer] 19 readers + 1 stalled: frames/s per reader min {min(rates):.1f} '
          f'max {max(rates):.1f} (stream {stream["fps"]} fps, cap 15), viewer RSS '
          f'{rss_before / 1024:.1f} -> {rss_after / 1024:.1f} MB, state.json max '
          f'{max(state_seconds) * 1000:.0f} ms')
    assert stream['clients_dropped'] == 1, stream         # the stalled one
    assert min(rates) >= 3.0, f'a reader got too few frames: {rates}'
    assert max(state_seconds) < 2.0, state_seconds
    assert rss_after - rss_before < 30 * 1024, (rss_before, rss_after)
    assert after, 'clients still registered after every client disconnected'
    assert viewer.running, viewer.log()
    assert 'Traceback' not in viewer.log(), viewer.log()


@pytest.mark.parametrize('params, expected', [
    ({'port': 70000}, 'port'),
    ({'jpeg_quality': 0}, 'jpeg_quality'),
    ({'host': 'no-such-host.invalid'}, "cannot resolve host 'no-such-host.invalid'"),
    ({'port': 'taken'}, 'Address already in use'),
])
def test_bad_start_up_values_exit_with_one_clear_error(tmp_path, params, expected):
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        if params.get('port') == 'taken':
            params = {'port': taken.getsockname()[1]}
        with NodeProcess('viewer_node', ros_domain_id(), tmp_path, params=params) as viewer:
            exit_code = viewer.wait(timeout=30)
    log = viewer.log()
    assert exit_code == 1, log
    fatal = [line for line in log.splitlines() if '[FATAL]' in line]
    assert len(fatal) == 1 and expected in fatal[0], log
    assert 'Traceback' not in log, log


def test_bad_image_is_logged_and_the_next_good_one_streamed(tmp_path):
    """viewer_node alone, fed images published by the test: a bad one never stops it."""
    domain = ros_domain_id()
    with GraphClient(domain) as client, \
            NodeProcess('viewer_node', domain, tmp_path, params={'port': 0}) as viewer:
        url = viewer_url(viewer)
        stream = MjpegClient(int(url.rsplit(':', 1)[1].strip('/')))
        try:
            stream.read_headers()
            publisher = client.publisher(Image, 'annotated_image', QoSProfile(
                depth=2, reliability=ReliabilityPolicy.RELIABLE), timeout=30)
            bad = image_msg(ASTRONAUT, client.node.get_clock().now().to_msg())
            bad.encoding = 'no_such_encoding'
            assert client.publish_until(publisher, bad, lambda: get_state(url)['images']['bad'],
                                        timeout=20)
            good = image_msg(ASTRONAUT, client.node.get_clock().now().to_msg())
            publisher.publish(good)
            frame = stream.read_frame()
        finally:
            stream.close()
        assert viewer.running, viewer.log()
    assert np.abs(frame.astype(int) - ASTRONAUT.astype(int)).mean() < 4.0
    log = viewer.log()
    assert "bad image on annotated_image (512x512 'no_such_encoding')" in log, log
    assert 'Traceback' not in log, log
