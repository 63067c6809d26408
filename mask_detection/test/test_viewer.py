"""viewer.py without ROS: configuration, page state, MJPEG fan-out and the HTTP server.

Frames are real photos (scikit-image's astronaut), streamed over real sockets.
"""
import gc
import json
import re
import socket
import threading
import time
import tracemalloc

import cv2
import numpy as np
import pytest
import skimage.data

from mask_detection.viewer import (FrameFanout, ViewerConfig, ViewerError, ViewerServer,
                                   ViewerState)
from tools.mjpeg_client import decode_jpeg, get, get_state, MjpegClient, StreamReaders

ASTRONAUT = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


def numbered_frame(number, base=ASTRONAUT):
    """Return the photo with a big frame number drawn on it (so frames differ visibly)."""
    frame = base.copy()
    cv2.putText(frame, str(number), (20, 120), cv2.FONT_HERSHEY_SIMPLEX, 4, (255, 255, 255), 8)
    return frame


class Viewer:
    """A started ViewerServer on a free port, its state and fan-out."""

    def __init__(self, **config):
        config.setdefault('port', 0)
        self.config = ViewerConfig(**config)
        self.state = ViewerState(self.config.max_events)
        self.fanout = FrameFanout(self.config)
        self.server = ViewerServer(self.config, self.state, self.fanout).start()
        self.url = f'http://127.0.0.1:{self.server.port}/'

    def wait_for(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.fanout.stats()):
                return True
            time.sleep(0.02)
        return predicate(self.fanout.stats())


@pytest.fixture
def start_viewer():
    """Return a function that starts a Viewer with ViewerConfig fields; all closed after."""
    started = []

    def start(**config):
        started.append(Viewer(**config))
        return started[-1]
    yield start
    for viewer in started:
        viewer.server.close()


@pytest.fixture
def viewer(start_viewer):
    return start_viewer()


# ---- configuration ----------------------------------------------------------------------

@pytest.mark.parametrize('field, value', [
    ('host', ''), ('port', -1), ('port', 65536), ('max_fps', 0.0), ('max_fps', 500.0),
    ('jpeg_quality', 0), ('jpeg_quality', 101), ('max_clients', 0), ('client_timeout', 0.1),
    ('max_events', 0)])
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        ViewerConfig(**{field: value})


def test_config_defaults_listen_on_this_machine_only():
    config = ViewerConfig()
    assert (config.host, config.port) == ('127.0.0.1', 8080)
    assert not config.exposed
    assert ViewerConfig(host='0.0.0.0').exposed
    assert not ViewerConfig(host='localhost').exposed


def test_port_in_use_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = ViewerConfig(port=port)
        fanout = FrameFanout(config)
        try:
            with pytest.raises(ViewerError, match=f'cannot listen on 127.0.0.1:{port}: '
                                                  'Address already in use'):
                ViewerServer(config, ViewerState(), fanout).start()
        finally:
            fanout.close()


def test_unknown_host_is_a_clear_error():
    config = ViewerConfig(host='no-such-host.invalid', port=0)
    fanout = FrameFanout(config)
    try:
        with pytest.raises(ViewerError, match="cannot resolve host 'no-such-host.invalid'"):
            ViewerServer(config, ViewerState(), fanout).start()
    finally:
        fanout.close()


# ---- page state -------------------------------------------------------------------------

class FakeClock:
    """A settable clock (the state's time source is a parameter)."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def face(track_id, label=1, confidence=0.9, x=10, y=20, width=30, height=40):
    return {'track_id': track_id, 'label': label, 'confidence': confidence, 'x': x, 'y': y,
            'width': width, 'height': height, 'mask_probability': 0.1, 'face_score': 0.8}


def test_state_lists_current_visitors_with_time_present():
    clock, monotonic = FakeClock(1000.0), FakeClock(50.0)
    state = ViewerState(clock=clock, monotonic=monotonic)
    state.on_detections(1000.0, [face(3)])
    clock.now, monotonic.now = 1004.5, 54.5
    state.on_detections(1004.4, [face(3, label=0, confidence=0.8), face(7)])
    snapshot = state.snapshot()
    assert [v['track_id'] for v in snapshot['visitors']] == [3, 7]
    first = snapshot['visitors'][0]
    assert {key: first[key] for key in ('label', 'label_name', 'confidence', 'x', 'y',
                                        'width', 'height', 'since')} == {
        'label': 0, 'label_name': 'mask', 'confidence': 0.8, 'x': 10, 'y': 20, 'width': 30,
        'height': 40, 'since': 1000.0}
    assert first['seconds_present'] == 4.5
    assert snapshot['visitors'][1]['seconds_present'] == pytest.approx(0.1)
    assert snapshot['detections']['received'] == 2
    assert snapshot['detections']['latency_ms_mean'] == pytest.approx(50.0)
    json.dumps(snapshot, allow_nan=False)


def test_state_empty_detections_clear_visitors_and_stale_ones_are_hidden():
    clock, monotonic = FakeClock(10.0), FakeClock(0.0)
    state = ViewerState(clock=clock, monotonic=monotonic)
    state.on_detections(10.0, [face(1)])
    assert len(state.snapshot()['visitors']) == 1
    monotonic.now = 6.0        # the detector went silent
    assert state.snapshot()['visitors'] == []
    state.on_detections(16.0, [face(1)])
    assert len(state.snapshot()['visitors']) == 1
    state.on_detections(16.1, [])
    assert state.snapshot()['visitors'] == []


def test_state_events_newest_first_and_bounded():
    state = ViewerState(max_events=3, clock=FakeClock(100.0))
    for number in range(5):
        state.on_event(90.0 + number, {'track_id': number + 1, 'event': 0, 'label': 1,
                                       'confidence': 0.9, 'x': 1, 'y': 2, 'width': 3,
                                       'height': 4})
    events = state.snapshot()['events']
    assert [e['track_id'] for e in events] == [5, 4, 3]
    assert events[0]['event_name'] == 'appeared' and events[0]['label_name'] == 'no_mask'
    assert events[0]['time'] == 94.0


def test_state_visitor_left_forgets_the_start_time():
    clock = FakeClock(20.0)
    state = ViewerState(clock=clock)
    state.on_event(5.0, {'track_id': 2, 'event': 0, 'label': 0, 'confidence': 0.9})
    state.on_detections(20.0, [face(2)])
    assert state.snapshot()['visitors'][0]['since'] == 5.0
    state.on_event(21.0, {'track_id': 2, 'event': 2, 'label': 0, 'confidence': 0.9})
    state.on_detections(22.0, [face(2)])      # the same id seen again: a new visit
    assert state.snapshot()['visitors'][0]['since'] == 22.0


def test_state_diagnostics_keyed_by_name_and_bounded():
    state = ViewerState()
    for number in range(40):
        state.on_diagnostics([{'name': f'node{number}: thing', 'level': 1, 'message': 'm',
                               'hardware_id': '', 'values': {'a': str(number)}}])
    state.on_diagnostics([{'name': 'node39: thing', 'level': 2, 'message': 'broken',
                           'hardware_id': 'cam', 'values': {}}])
    diagnostics = state.snapshot()['diagnostics']
    assert len(diagnostics) == 32
    assert 'node0: thing' not in diagnostics
    assert diagnostics['node39: thing']['level_name'] == 'ERROR'
    assert diagnostics['node39: thing']['message'] == 'broken'


# ---- HTTP -------------------------------------------------------------------------------

def test_page_is_self_contained_and_says_no_images_yet(viewer):
    status, headers, body = get(viewer.url)
    assert status == 200
    assert headers['Content-Type'].startswith('text/html')
    page = body.decode()
    assert 'no images yet' in page
    assert '.src = "stream.mjpg"' in page and 'state.json' in page
    # Nothing from elsewhere: no absolute URL at all, and the browser is told so.
    assert not re.search(r'(https?:)?//[a-z0-9]', page, re.IGNORECASE), \
        re.search(r'(https?:)?//[a-z0-9].{0,40}', page, re.IGNORECASE).group(0)
    assert "default-src 'none'" in headers['Content-Security-Policy']


def test_state_json_before_any_image(viewer):
    state = get_state(viewer.url)
    assert state['visitors'] == [] and state['events'] == [] and state['diagnostics'] == {}
    assert state['images']['received'] == 0
    assert state['stream']['clients'] == 0
    status, _, body = get(viewer.url + 'snapshot.jpg')
    assert (status, body) == (503, b'no images yet\n')


def test_unknown_path_is_404(viewer):
    status, _, body = get(viewer.url + 'nothing-here')
    assert status == 404 and b'/stream.mjpg' in body


def test_stream_sends_the_offered_frames_as_jpeg(viewer):
    client = MjpegClient(viewer.server.port)
    try:
        assert client.read_headers() == 200
        assert client.headers['content-type'].startswith('multipart/x-mixed-replace')
        received = []
        for number in range(3):
            viewer.wait_for(lambda stats: stats['clients'] == 1)
            viewer.fanout.offer(numbered_frame(number))
            received.append(client.read_frame())
    finally:
        client.close()
    for number, image in enumerate(received):
        assert image.shape == ASTRONAUT.shape
        difference = np.abs(image.astype(int) - numbered_frame(number).astype(int)).mean()
        assert difference < 4.0, f'frame {number} differs from what was offered: {difference}'
    # Each frame is the one offered, not a neighbour: the drawn numbers differ.
    assert np.abs(received[0].astype(int) - received[1].astype(int)).mean() > 0.5
    assert viewer.wait_for(lambda stats: stats['clients'] == 0 and stats['frames_sent'] == 3)


def test_snapshot_returns_the_newest_frame(viewer):
    viewer.fanout.offer(numbered_frame(1))
    viewer.fanout.offer(numbered_frame(2))
    status, headers, body = get(viewer.url + 'snapshot.jpg')
    assert status == 200 and headers['Content-Type'] == 'image/jpeg'
    image = decode_jpeg(body)
    assert np.abs(image.astype(int) - numbered_frame(2).astype(int)).mean() < 4.0


def test_nothing_is_encoded_while_nobody_watches(viewer):
    for number in range(10):
        viewer.fanout.offer(numbered_frame(number))
    time.sleep(0.3)
    stats = viewer.fanout.stats()
    assert stats['frames_offered'] == 10 and stats['frames_encoded'] == 0


def test_stream_rate_is_capped(start_viewer):
    viewer = start_viewer(max_fps=5.0)
    client = MjpegClient(viewer.server.port)
    stop = threading.Event()

    def produce():
        number = 0
        while not stop.is_set():
            viewer.fanout.offer(numbered_frame(number % 10))
            number += 1
            time.sleep(0.01)      # ~100 Hz offered
    producer = threading.Thread(target=produce)
    producer.start()
    try:
        client.read_jpeg()
        started = time.monotonic()
        count = 0
        while time.monotonic() - started < 2.0:
            client.read_jpeg()
            count += 1
    finally:
        stop.set()
        producer.join()
        client.close()
    rate = count / (time.monotonic() - started)
    assert 2.5 <= rate <= 5.5, f'{rate:.1f} frames/s with max_fps 5 and ~100 Hz offered'


def test_too_many_viewers_get_503(start_viewer):
    viewer = start_viewer(max_clients=2)
    clients = [MjpegClient(viewer.server.port) for _ in range(2)]
    try:
        assert viewer.wait_for(lambda stats: stats['clients'] == 2)
        status, _, body = get(viewer.url + 'stream.mjpg')
        assert status == 503 and b'max_clients = 2' in body
    finally:
        for client in clients:
            client.close()
    assert viewer.wait_for(lambda stats: stats['clients'] == 0)


@pytest.mark.slow
def test_twenty_clients_one_stalled(start_viewer, capfd):
    """19 readers and 1 stalled client: nobody waits for it, memory stays bounded."""
    viewer = start_viewer(max_fps=30.0, client_timeout=3.0)
    readers = StreamReaders(viewer.server.port, 19, stalled=1)
    assert viewer.wait_for(lambda stats: stats['clients'] == 20)
    frames = [numbered_frame(number) for number in range(30)]
    gc.collect()
    tracemalloc.start()
    offer_seconds = []
    started = time.monotonic()
    try:
        number = 0
        # 5 s of frames, and on until the stalled client was dropped (client_timeout 3 s
        # after its buffers filled up), 30 s at most.
        while time.monotonic() - started < 5.0 or (
                not viewer.fanout.stats()['clients_dropped']
                and time.monotonic() - started < 30.0):
            before = time.perf_counter()
            viewer.fanout.offer(frames[number % len(frames)])
            offer_seconds.append(time.perf_counter() - before)
            number += 1
            time.sleep(1 / 30)
        _, peak = tracemalloc.get_traced_memory()
        elapsed = time.monotonic() - started
    finally:
        tracemalloc.stop()
        stats = viewer.fanout.stats()
        counts = list(readers.counts)
        jpeg_size = len(viewer.fanout.newest(0, 1.0)[1])
        readers.close(reset=True)       # abrupt disconnects, mid-stream

    # The producer (the node's callback) never waited for the stalled client, which blocks
    # for client_timeout (3 s): offer() only swaps a reference (a loaded machine's thread
    # switches can still take tens of ms).
    assert max(offer_seconds) < 0.5, f'offer() took up to {max(offer_seconds) * 1000:.0f} ms'
    # The stalled client was dropped after client_timeout; the others kept streaming.
    assert stats['clients_dropped'] == 1 and stats['clients'] == 19, stats
    encoded = stats['frames_encoded']
    with capfd.disabled():
        print(f'\n[viewer] 19 readers + 1 stalled, {elapsed:.1f} s: frames per '
              f'reader {min(counts)}-{max(counts)} of {encoded} encoded, traced peak '
              f'{peak / 1e6:.2f} MB, max offer() {max(offer_seconds) * 1000:.2f} ms')
    assert encoded >= 30, stats
    assert min(counts) >= 0.5 * encoded, f'frames per reader {counts} of {encoded} encoded'
    # Memory: a per-client queue would hold every frame the stalled client did not take
    # (encoded x JPEG size); the fan-out holds one JPEG per client at most.
    queued_bytes = encoded * jpeg_size
    assert peak < 4 * 1024 * 1024 and peak < queued_bytes / 2, (
        f'peak {peak / 1e6:.1f} MB traced; a queue for the stalled client: '
        f'{queued_bytes / 1e6:.1f} MB')
    # Every disconnect was clean: all clients gone, no traceback from the server threads.
    assert viewer.wait_for(lambda s: s['clients'] == 0, timeout=10.0), viewer.fanout.stats()
    assert 'Traceback' not in capfd.readouterr().err
    status, _, _ = get(viewer.url + 'state.json')
    assert status == 200
