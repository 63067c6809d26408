"""detector_node: its helpers, and the installed node on a real DDS graph.

The graph tests use the shipped model (the conftest's model_path fixture): they check where the
face is, its label (the astronaut wears no mask), the headers and the annotation colours.
"""
import array
import dataclasses
import time

from conftest import ros_domain_id
import cv2
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from graph_utils import GraphClient, NodeProcess, write_video
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
import skimage.data

from mask_detection import detector_node
from mask_detection.pipeline import MaskDetectionPipeline, PipelineConfig
from mask_detection_msgs.msg import MaskDetection, MaskDetectionArray, VisitorEvent

ASTRONAUT = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
BOX_TOLERANCE_PX = 3
# Deadlines, not durations: a node starting (Python, rclpy, torch, the model) takes seconds on
# an idle machine and can take a minute on a busy 2-core one; waits end as soon as the
# condition holds, so generous deadlines cost nothing when things work.
STARTUP_S = 120
STEP_S = 60


@pytest.fixture(scope='module')
def expected_detections(model_path):
    """Return what the pipeline, configured like the node's defaults, finds in the astronaut."""
    values = {spec.name: spec.default for spec in detector_node.parameter_specs()}
    values['model_path'] = str(model_path)
    detections = MaskDetectionPipeline(detector_node.pipeline_config(values)).process(
        ASTRONAUT).detections
    assert len(detections) == 1, f'expected one face in the astronaut photo: {detections}'
    # The astronaut wears no mask: the shipped model must say so.
    assert detections[0].label == MaskDetection.NO_MASK, detections
    return detections


# ---- helpers without a graph ------------------------------------------------------------

def test_latest_frame_keeps_only_the_newest():
    mailbox = detector_node.LatestFrame()
    assert mailbox.take(timeout=0.01) is None
    for item in 'abc':
        mailbox.put(item)
    assert mailbox.take(timeout=0.01) == (0, 'c')
    assert mailbox.dropped == 2
    assert mailbox.take(timeout=0.01) is None
    # Items are numbered in the order they are taken, for the in-order publishing.
    mailbox.put('d')
    assert mailbox.take(timeout=0.01) == (1, 'd')
    assert mailbox.taken == 2


def test_throttled_log_counts_repeats():
    lines = []
    log = detector_node.ThrottledLog(lines.append, period=0.2)
    for _ in range(3):
        log('bad image: zero size')
    log('bad image: unknown encoding')
    assert lines == ['bad image: zero size', 'bad image: unknown encoding']
    time.sleep(0.25)
    log('bad image: zero size')
    assert lines[-1].startswith('bad image: zero size (2 more in the last')


def test_parameter_specs_are_described_and_build_the_pipeline_config(model_path):
    specs = detector_node.parameter_specs()
    names = [spec.name for spec in specs]
    assert len(names) == len(set(names))
    for required in ('face_detector', 'model_path', 'device', 'num_threads', 'mask_threshold',
                     'unknown_threshold', 'min_face_size', 'max_rate_hz', 'qos_reliability'):
        assert required in names
    undescribed = {field.name for field in dataclasses.fields(PipelineConfig)} - set(
        detector_node.PIPELINE_PARAMETERS)
    assert not undescribed, 'PipelineConfig fields without a parameter description'
    assert all(spec.description for spec in specs)
    values = {spec.name: spec.default for spec in specs}
    values.update({'face_detector': 'haar', 'haar_min_neighbors': 7, 'mask_threshold': 0.7})
    config = detector_node.pipeline_config(values)
    assert (config.face_detector, config.haar_min_neighbors, config.mask_threshold) == (
        'haar', 7, 0.7)


def test_rebuilding_reuses_the_parts_that_did_not_change(model_path):
    values = {spec.name: spec.default for spec in detector_node.parameter_specs()}
    values.update(model_path=str(model_path), face_detector='haar')
    first = detector_node.build_pipeline(values)
    values['mask_threshold'] = 0.8
    thresholds = detector_node.build_pipeline(values, {'mask_threshold'}, first)
    assert thresholds.face_detector is first.face_detector
    assert thresholds.classifier is first.classifier
    assert thresholds.config.mask_threshold == 0.8 and first.config.mask_threshold == 0.5
    values['haar_min_neighbors'] = 3
    detector = detector_node.build_pipeline(values, {'haar_min_neighbors'}, thresholds)
    assert detector.face_detector is not first.face_detector
    assert detector.classifier is first.classifier
    model = detector_node.build_pipeline(values, {'model_path'}, detector)
    assert model.classifier is not first.classifier
    values['align_faces'] = False
    unaligned = detector_node.build_pipeline(values, {'align_faces'}, model)
    assert unaligned.classifier is not model.classifier
    assert model.classifier.align_faces and not unaligned.classifier.align_faces
    with pytest.raises(ValueError, match='face_detector'):
        detector_node.build_pipeline(dict(values, face_detector='yolo'), {'face_detector'},
                                     detector)


@pytest.fixture
def node_in_process(model_path):
    """Build a DetectorNode in this process (own context and domain), not spinning."""
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_domain_id())
    node = detector_node.DetectorNode(context=context, parameter_overrides=[
        Parameter('model_path', value=str(model_path)), Parameter('face_detector', value='haar')])
    yield node
    node.stop()
    node.destroy_node()
    rclpy.try_shutdown(context=context)


def test_diagnostic_levels(node_in_process):
    now = time.monotonic()
    status = node_in_process.core.diagnostic_status

    def window(**fields):
        return detector_node.WindowStats(**{'received': 30, 'processed': 10, **fields})

    # Busy is the share of the workers' time: with 2 frames in flight, 0.95 s each per second.
    workers = len(node_in_process.core.pipelines)
    assert workers == 2     # the default frames_in_flight
    behind = status(window(dropped=20, processing_ms_sum=950.0 * workers), 1.0, now, now - 0.1)
    assert behind.level == DiagnosticStatus.WARN and 'falling behind' in behind.message
    assert {kv.key: kv.value for kv in behind.values}['frames_in_flight'] == '2'
    half = status(window(dropped=20, processing_ms_sum=950.0), 1.0, now, now - 0.1)
    assert half.level == DiagnosticStatus.OK, half.message     # one worker was free
    # The same drops with an idle worker come from max_rate_hz, not from falling behind.
    limited = status(window(dropped=20, processing_ms_sum=100.0), 1.0, now, now - 0.1)
    assert limited.level == DiagnosticStatus.OK, limited.message
    bad = status(window(bad_frames=2, processing_ms_sum=100.0), 1.0, now, now - 0.1)
    assert bad.level == DiagnosticStatus.WARN and '2 bad frame' in bad.message
    silent = status(window(), 1.0, now, now - 6.0)      # no_image_timeout: 5 s
    assert silent.level == DiagnosticStatus.ERROR and 'no image on /image' in silent.message
    values = {kv.key: kv.value for kv in limited.values}
    assert values['processing_ms_mean'] == '10.00'
    assert values['input_rate_hz'] == '30.00' and values['dropped_frames'] == '20'
    assert values['face_detector'] == 'haar'
    assert values['model'] == str(node_in_process.core.pipeline.classifier.model_path)


def test_annotated_image_is_drawn_only_while_subscribed(node_in_process):
    node, core = node_in_process, node_in_process.core
    frame = _image_msg(ASTRONAUT, frame_id='annotated_test', stamp=(5, 0))
    core._process(frame, time.monotonic())
    assert 'draw' not in core.window.stage_ms, 'drew an image that nobody asked for'

    viewer = rclpy.create_node('viewer', context=node.context)
    received = []
    viewer.create_subscription(Image, 'annotated_image', received.append, RELIABLE)
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(viewer)
    try:
        deadline = time.monotonic() + 10
        while core.annotated_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        core._process(frame, time.monotonic())
        while not received and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        viewer.destroy_node()
    assert 'draw' in core.window.stage_ms
    assert received and received[0].header.frame_id == 'annotated_test'
    assert (received[0].width, received[0].height, received[0].encoding) == (512, 512, 'bgr8')


# ---- graph tests ------------------------------------------------------------------------

def _stamp(header):
    return header.stamp.sec, header.stamp.nanosec


def _image_msg(frame, frame_id='test_camera', stamp=(1, 0)):
    msg = Image(height=frame.shape[0], width=frame.shape[1], encoding='bgr8',
                step=frame.shape[1] * 3)
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    data = array.array('B')
    data.frombytes(np.ascontiguousarray(frame))
    msg.data = data
    return msg


def _assert_box_close(detection, expected):
    actual = (detection.x, detection.y, detection.width, detection.height)
    wanted = (expected.x, expected.y, expected.width, expected.height)
    assert np.abs(np.subtract(actual, wanted)).max() <= BOX_TOLERANCE_PX, (actual, wanted)


def _box_colour_share(image, detection):
    """Share of the box outline's pixels drawn in the colour of the detection's label."""
    x, y, w, h = detection.x, detection.y, detection.width, detection.height
    outline = np.concatenate([image[y, x:x + w], image[y + h - 1, x:x + w],
                              image[y:y + h, x], image[y:y + h, x + w - 1]]).astype(int)
    blue, green, red = outline[:, 0], outline[:, 1], outline[:, 2]
    strong, weak = 180, 80
    if detection.label == MaskDetection.MASK:          # green
        drawn = (green >= strong) & (red <= weak) & (blue <= weak)
    elif detection.label == MaskDetection.NO_MASK:     # red
        drawn = (red >= strong) & (green <= weak) & (blue <= weak)
    else:                                              # yellow
        drawn = (red >= strong) & (green >= strong) & (blue <= weak)
    return drawn.mean()


@pytest.mark.graph
def test_camera_to_detector_end_to_end(tmp_path, model_path, expected_detections):
    """camera_node plays a video -> detector_node -> detections, annotated image, diagnostics."""
    video = write_video(tmp_path / 'astronaut.avi', ASTRONAUT, 20, 20.0)
    domain = ros_domain_id()
    with GraphClient(domain) as client:
        images = client.collect(Image, 'image_raw', RELIABLE)
        arrays = client.collect(MaskDetectionArray, 'detections', RELIABLE)
        annotated = client.collect(Image, 'annotated_image', RELIABLE)
        diagnostics = client.collect(DiagnosticArray, '/diagnostics', RELIABLE)
        events = client.collect(VisitorEvent, 'visitor_events', RELIABLE)
        with NodeProcess('detector_node', domain, tmp_path,
                         params={'model_path': str(model_path)},
                         remaps={'image': 'image_raw'}) as detector, \
                NodeProcess('camera_node', domain, tmp_path, params={
                    'source': str(video), 'fps': 10.0, 'loop': True,
                    'frame_id': 'astronaut_camera'}) as camera:
            assert client.spin_until(lambda: arrays, timeout=STARTUP_S), \
                detector.log() + camera.log()
            # The visitor's one VISITOR_APPEARED may have gone out before this client's
            # subscription matched: restart tracking (a run-time parameter) for a fresh one.
            events.clear()
            assert client.set_parameters('/detector_node', {'tracking.min_hits': 2}, STEP_S)[0] \
                .successful
            assert client.spin_until(
                lambda: len(arrays) >= 4 and annotated and diagnostics and events,
                timeout=STEP_S), detector.log() + camera.log()
            assert camera.stop() == 0, camera.log()
            # No more images: the visitor leaves after tracking.leave_timeout (2 s) anyway.
            assert client.spin_until(
                lambda: any(e.event == VisitorEvent.VISITOR_LEFT for e in events),
                timeout=STEP_S), detector.log()
            assert detector.stop() == 0, detector.log()

    image_stamps = {_stamp(msg.header) for msg in images}
    first_image = min(image_stamps)
    checked = 0
    for msg in arrays:
        assert msg.header.frame_id == 'astronaut_camera'
        assert (msg.image_width, msg.image_height) == (512, 512)
        if _stamp(msg.header) >= first_image:      # images before that the test did not see
            assert _stamp(msg.header) in image_stamps, 'header not copied from the image'
            checked += 1
        assert len(msg.detections) == len(expected_detections), msg.detections
        for detection, expected in zip(msg.detections, expected_detections):
            _assert_box_close(detection, expected)
            assert 0.0 <= detection.mask_probability <= 1.0
    assert checked >= 1
    # Tracking (on by default): one track, announced once it has min_hits detections.
    assert {msg.detections[0].track_id for msg in arrays} == {1}
    appeared = events[0]
    assert (appeared.event, appeared.track_id) == (VisitorEvent.VISITOR_APPEARED, 1)
    assert appeared.header.frame_id == 'astronaut_camera'
    assert _stamp(appeared.header) in {_stamp(msg.header) for msg in arrays}
    _assert_box_close(appeared, expected_detections[0])
    left = [e for e in events if e.event == VisitorEvent.VISITOR_LEFT]
    assert [e.track_id for e in left] == [1]
    assert left[0].header.frame_id == 'astronaut_camera'
    assert _stamp(left[0].header) > max(_stamp(msg.header) for msg in arrays)

    picture = annotated[-1]
    assert picture.header.frame_id == 'astronaut_camera'
    assert _stamp(picture.header) in {_stamp(msg.header) for msg in arrays} | image_stamps
    pixels = np.frombuffer(picture.data, np.uint8).reshape(512, 512, 3)
    same_frame = [msg for msg in arrays if _stamp(msg.header) == _stamp(picture.header)]
    face = (same_frame or arrays)[-1].detections[0]
    assert _box_colour_share(pixels, face) >= 0.5, 'no box in the label colour at the face'
    assert _box_colour_share(ASTRONAUT, face) < 0.1, 'the source already has that colour'

    status = diagnostics[-1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert 'detector' in status.name
    for key in ('input_rate_hz', 'processing_ms_mean', 'processing_ms_max', 'dropped_frames',
                'faces_per_frame', 'face_detector', 'model'):
        assert key in values, values


@pytest.mark.graph
def test_bad_frames_are_logged_and_the_next_good_frame_is_processed(
        tmp_path, model_path, expected_detections):
    domain = ros_domain_id()
    good = _image_msg(ASTRONAUT, stamp=(42, 7))
    unsupported = _image_msg(ASTRONAUT[:8, :8])
    unsupported.encoding = '32FC1'
    zero_size = Image(encoding='bgr8')
    corrupt = _image_msg(ASTRONAUT[:16, :16])
    corrupt.height, corrupt.width, corrupt.step = 480, 640, 640 * 3    # data is 16x16
    with GraphClient(domain) as client:
        arrays = client.collect(MaskDetectionArray, 'detections', RELIABLE)
        diagnostics = client.collect(DiagnosticArray, '/diagnostics', RELIABLE)
        with NodeProcess('detector_node', domain, tmp_path,
                         params={'model_path': str(model_path)}) as detector:
            publisher = client.publisher(Image, 'image', RELIABLE, timeout=STARTUP_S)
            for count, (bad, what) in enumerate(((unsupported, '32FC1'),
                                                 (zero_size, 'zero size'),
                                                 (corrupt, '921600')), start=1):
                assert client.publish_until(
                    publisher, bad, lambda: detector.count(r'\[ERROR\]') >= count,
                    timeout=STEP_S), detector.log()
                error_lines = [line for line in detector.log().splitlines() if '[ERROR]' in line]
                assert what in error_lines[-1], detector.log()
            assert detector.running
            assert client.publish_until(publisher, good, lambda: arrays, timeout=STEP_S), \
                detector.log()
            diagnostics.clear()
            assert client.spin_until(lambda: diagnostics, timeout=STEP_S), detector.log()
            assert detector.stop() == 0, detector.log()
    for msg in arrays:
        assert _stamp(msg.header) == (42, 7), 'a bad frame produced detections'
        assert msg.header.frame_id == 'test_camera'
        assert len(msg.detections) == 1
        _assert_box_close(msg.detections[0], expected_detections[0])
    values = {kv.key: kv.value for kv in diagnostics[-1].status[0].values}
    assert int(values['bad_frames_total']) >= 3, values


@pytest.mark.graph
def test_parameters_are_validated_at_run_time_and_frames_are_dropped(tmp_path, model_path):
    """Also: no image yet is an ERROR in /diagnostics; max_rate_hz drops frames."""
    domain = ros_domain_id()
    with GraphClient(domain) as client:
        arrays = client.collect(MaskDetectionArray, 'detections', RELIABLE)
        diagnostics = client.collect(DiagnosticArray, '/diagnostics', RELIABLE)
        # Reliable, so that the newest frame surely reaches the node (the test waits for it).
        with NodeProcess('detector_node', domain, tmp_path, params={
                'model_path': str(model_path), 'no_image_timeout': 0.5,
                'qos_reliability': 'reliable'}) as detector:
            assert client.spin_until(lambda: diagnostics, timeout=STARTUP_S), detector.log()
            status = diagnostics[-1].status[0]
            assert status.level == DiagnosticStatus.ERROR
            assert 'no image on /image' in status.message

            rejected = {
                'mask_threshold': 1.5,                          # outside [0, 1]
                'face_detector': 'yolo',                        # unknown detector
                'model_path': str(tmp_path / 'missing.pt'),     # no such file
                'qos_reliability': 'reliable',                  # read-only
            }
            for name, value in rejected.items():
                result, = client.set_parameters('/detector_node', {name: value}, STEP_S)
                assert not result.successful, name
                assert result.reason, name
            assert 'yolo' in client.set_parameters(
                '/detector_node', {'face_detector': 'yolo'}, STEP_S)[0].reason
            assert 'missing.pt' in client.set_parameters(
                '/detector_node', {'model_path': str(tmp_path / 'missing.pt')}, STEP_S)[0].reason
            accepted = client.set_parameters('/detector_node',
                                             {'max_rate_hz': 2.0, 'mask_threshold': 0.6}, STEP_S)
            assert all(result.successful for result in accepted)
            assert client.get_parameters('/detector_node', ['max_rate_hz', 'mask_threshold',
                                                            'face_detector'], STEP_S) == {
                'max_rate_hz': 2.0, 'mask_threshold': 0.6, 'face_detector': 'auto'}

            # 2 Hz while frames come at up to 20 Hz: most frames are replaced before processing.
            # The publisher waits until the node's subscription matched (nothing is lost
            # before); every processed frame lies between the first publish and the arrival
            # of the newest frame's detections, so at 2 Hz at most 2 per second + 1.
            publisher = client.publisher(Image, 'image', RELIABLE)
            first_publish = time.monotonic()
            for index in range(40):
                publisher.publish(_image_msg(ASTRONAUT, stamp=(100, index)))
                client.spin_for(0.05)
            # The newest frame is never replaced, so it is processed (on a busy machine late).
            assert client.spin_until(
                lambda: arrays and _stamp(arrays[-1].header) == (100, 39), timeout=STEP_S), \
                f'the newest frame was not processed: {[_stamp(m.header) for m in arrays]}' \
                + detector.log()
            window_s = time.monotonic() - first_publish
            processed = len(arrays)
            diagnostics.clear()
            assert client.spin_until(lambda: diagnostics, timeout=STEP_S), detector.log()
            assert detector.running, detector.log()
            assert detector.stop() == 0, detector.log()
    assert processed <= 2.0 * window_s + 1, \
        f'max_rate_hz=2 not respected: {processed} frames processed in {window_s:.1f} s: ' \
        f'{[(_stamp(m.header), m.header.frame_id) for m in arrays]}'
    assert len(arrays) == processed, 'frames processed after the newest one'
    values = {kv.key: kv.value for kv in diagnostics[-1].status[0].values}
    # Every frame the node received was processed or dropped, never queued.
    dropped = int(values['dropped_frames_total'])
    assert dropped >= 1 and dropped + processed <= 40, (dropped, processed)
    stamps = [_stamp(msg.header) for msg in arrays]
    assert stamps == sorted(set(stamps))


@pytest.mark.graph
@pytest.mark.parametrize('case', ['missing model', 'corrupt model', 'unknown detector',
                                  'out of range'])
def test_unusable_configuration_exits_with_one_clear_error(tmp_path, model_path, case):
    corrupt = tmp_path / 'corrupt.pt'
    corrupt.write_bytes(model_path.read_bytes()[:200])
    params, expected = {
        'missing model': ({'model_path': str(tmp_path / 'nowhere.pt')}, 'nowhere.pt'),
        'corrupt model': ({'model_path': str(corrupt)}, 'corrupt.pt'),
        'unknown detector': ({'model_path': str(model_path), 'face_detector': 'yolo'}, 'yolo'),
        'out of range': ({'model_path': str(model_path), 'mask_threshold': 2.0},
                         'mask_threshold'),
    }[case]
    with NodeProcess('detector_node', ros_domain_id(), tmp_path, params=params) as detector:
        exit_code = detector.wait(timeout=STARTUP_S)
    log = detector.log()
    assert exit_code not in (0, None), log
    fatal = [line for line in log.splitlines() if '[FATAL]' in line]
    assert len(fatal) == 1 and expected in fatal[0], log
    assert 'Traceback' not in log, log


@pytest.mark.graph
def test_frames_in_flight_are_published_in_arrival_order(tmp_path, model_path):
    """Two frames in flight: a quick frame (no face) never overtakes a slow one (a face).

    A burst alternates the astronaut (detection, then classification) with an empty grey frame
    (detection only) faster than the node can process them, so both workers are busy and the
    grey frame taken second often finishes first; detections must still go out in stamp order.
    """
    grey = np.full_like(ASTRONAUT, 128)
    domain = ros_domain_id()
    with GraphClient(domain) as client:
        arrays = client.collect(MaskDetectionArray, 'detections', RELIABLE)
        with NodeProcess('detector_node', domain, tmp_path, params={
                'model_path': str(model_path), 'frames_in_flight': 2,
                'qos_reliability': 'reliable'}) as detector:
            publisher = client.publisher(Image, 'image', RELIABLE, timeout=STARTUP_S)
            assert client.publish_until(publisher, _image_msg(grey, stamp=(1, 0)),
                                        lambda: arrays, timeout=STARTUP_S), detector.log()
            for index in range(1, 121):
                frame = ASTRONAUT if index % 2 else grey
                publisher.publish(_image_msg(frame, stamp=(10 + index // 100,
                                                           index % 100 * 10_000_000)))
                client.spin_for(0.005)
            assert client.spin_until(lambda: len(arrays) >= 20, timeout=STEP_S), detector.log()
            client.spin_for(1.0)
            assert detector.running, detector.log()
    stamps = [_stamp(msg.header) for msg in arrays]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps), stamps
    faces = [len(msg.detections) for msg in arrays[1:]]
    assert 0 in faces and 1 in faces, faces     # both kinds of frame were processed
