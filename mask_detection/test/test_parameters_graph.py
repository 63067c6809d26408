"""detector_node's parameters through ROS: set at start-up (-p) and at run time (SetParameters).

Each test starts the installed detector_node with the shipped model and publishes skimage's
astronaut photo (one unmasked face) as sensor_msgs/Image; what must change follows from the
parameter descriptions (detector_node.PIPELINE_PARAMETERS, tracking.TrackerConfig), not from
running the pipeline.
"""
from conftest import ros_domain_id
import cv2
from graph_utils import GraphClient, NodeProcess
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
import skimage.data
from std_msgs.msg import Header

from mask_detection.image_codec import array_to_image_msg
from mask_detection_msgs.msg import MaskDetection, MaskDetectionArray, VisitorEvent

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
ASTRONAUT = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
# Where the astronaut's face is (x, y, w, h); a detection there is her face.
ASTRONAUT_FACE = (180, 56, 92, 122)
FRAME_PERIOD_S = 0.2
NODE = '/detector_node'


def image_at(stamp_s, frame_id='parameter_camera'):
    msg = array_to_image_msg(ASTRONAUT, 'bgr8', header=Header(frame_id=frame_id))
    msg.header.stamp.sec = int(stamp_s)
    msg.header.stamp.nanosec = int(round((stamp_s - int(stamp_s)) * 1e9))
    return msg


def seconds_of(header):
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def on_face(detection):
    """Tell whether the detection's centre lies in the astronaut's face."""
    x, y, w, h = ASTRONAUT_FACE
    cx, cy = detection.x + detection.width / 2, detection.y + detection.height / 2
    return x <= cx <= x + w and y <= cy <= y + h


class Frames:
    """Publish astronaut frames with increasing stamps; return each frame's MaskDetectionArray."""

    def __init__(self, client, detector, start=100.0):
        self.client, self.detector = client, detector
        self.arrays = []
        client.node.create_subscription(MaskDetectionArray, 'detections', self.arrays.append,
                                        RELIABLE)
        self.publisher = client.publisher(Image, 'image', RELIABLE, timeout=60.0)
        self.stamp = start

    def next(self, frame_id='parameter_camera'):
        self.stamp += FRAME_PERIOD_S
        stamp = self.stamp
        assert self.client.publish_until(
            self.publisher, image_at(stamp, frame_id),
            lambda: any(abs(seconds_of(msg.header) - stamp) < 1e-6 for msg in self.arrays),
            timeout=60), self.detector.log()
        return next(msg for msg in self.arrays if abs(seconds_of(msg.header) - stamp) < 1e-6)

    def face(self):
        """Publish the next frame; return its one detection of the astronaut (else fail)."""
        msg = self.next()
        faces = [detection for detection in msg.detections if on_face(detection)]
        assert len(faces) == 1, msg.detections
        return faces[0]


@pytest.mark.graph
@pytest.mark.parametrize('enabled', [False, True])
def test_tracking_enabled_switches_track_ids_and_visitor_events(tmp_path, enabled):
    """tracking.enabled false: track_id 0, no visitor_events; true: one track, announced.

    Started with false, it is then switched on at run time (SetParameters).
    """
    domain = ros_domain_id()
    with GraphClient(domain) as client:
        events = []
        event_subscription = client.node.create_subscription(
            VisitorEvent, 'visitor_events', events.append, RELIABLE)
        with NodeProcess('detector_node', domain, tmp_path, params={
                'tracking.enabled': enabled, 'tracking.min_hits': 3,
                'tracking.leave_timeout': 60.0}) as detector:
            frames = Frames(client, detector)
            # visitor_events is published with tracking on or off: wait until it is matched,
            # so that an event sent from the first frames on is not lost.
            assert client.spin_until(lambda: event_subscription.get_publisher_count() >= 1,
                                     timeout=30), detector.log()
            client.spin_for(0.5)
            faces = [frames.face() for _ in range(6)]
            client.spin_until(lambda: events, timeout=3)
            if not enabled:
                events_while_off = list(events)
                # Switched on at run time: a tracker starts, the next frames get a track.
                assert client.set_parameters(NODE, {'tracking.enabled': True})[0].successful
                later = [frames.face() for _ in range(4)]
                assert client.spin_until(lambda: events, timeout=10), detector.log()
            assert detector.running, detector.log()
            assert detector.stop() == 0, detector.log()
    if enabled:
        assert 'tracking on' in detector.log()
        track_ids = {face.track_id for face in faces}
        assert len(track_ids) == 1 and track_ids != {0}, track_ids
        assert [(event.event, event.track_id) for event in events] == [
            (VisitorEvent.VISITOR_APPEARED, faces[0].track_id)]
    else:
        assert 'tracking off' in detector.log()
        assert [face.track_id for face in faces] == [0] * 6
        assert events_while_off == []
        track_ids = {face.track_id for face in later}
        assert len(track_ids) == 1 and track_ids != {0}, track_ids
        assert [(event.event, event.track_id) for event in events] == [
            (VisitorEvent.VISITOR_APPEARED, later[0].track_id)]


@pytest.mark.graph
def test_label_parameters_at_start_up_and_at_run_time(tmp_path):
    """min_face_size, unknown_threshold, face_score_threshold: -p at start, then SetParameters.

    The astronaut wears no mask.  Tracking is off: its smoothing keeps a track's label when a
    frame's raw label is UNKNOWN, and these parameters act on the raw label.
    """
    domain = ros_domain_id()
    with GraphClient(domain) as client:
        # Start-up: her face (about 90 x 120 px) is below min_face_size: UNKNOWN.
        with NodeProcess('detector_node', domain, tmp_path, params={
                'tracking.enabled': False, 'min_face_size': 1000}) as detector:
            frames = Frames(client, detector)
            small = frames.face()
            assert small.label == MaskDetection.UNKNOWN, small

            # Run time: min_face_size back to 16 px: her own label, NO_MASK.
            assert client.set_parameters(NODE, {'min_face_size': 16})[0].successful
            face = frames.face()
            assert face.label == MaskDetection.NO_MASK, face
            assert face.confidence < 1.0, f'cannot test unknown_threshold above {face}'
            assert face.confidence > 0.6, 'the astronaut is no clear unmasked face'

            # unknown_threshold above the confidence of her label: UNKNOWN; below: NO_MASK.
            above = (face.confidence + 1.0) / 2.0
            assert client.set_parameters(NODE, {'unknown_threshold': above})[0].successful
            unsure = frames.face()
            assert unsure.label == MaskDetection.UNKNOWN, (above, unsure)
            assert client.set_parameters(
                NODE, {'unknown_threshold': face.confidence / 2.0})[0].successful
            assert frames.face().label == MaskDetection.NO_MASK

            # face_score_threshold (CenterFace's) above her face's score: no face there.
            assert 'face detector centerface' in detector.log(), detector.log()
            assert face.face_score < 1.0
            threshold = (face.face_score + 1.0) / 2.0
            assert client.set_parameters(
                NODE, {'face_score_threshold': threshold})[0].successful
            msg = frames.next()
            assert all(d.face_score >= threshold for d in msg.detections), msg.detections
            assert client.get_parameters(NODE, ['min_face_size', 'face_score_threshold']) == {
                'min_face_size': 16, 'face_score_threshold': threshold}
            assert detector.stop() == 0, detector.log()


@pytest.mark.graph
@pytest.mark.parametrize('params, check', [
    # No face probability is at or above 1 in float32 softmax unless it is certain: every
    # label whose probability is under 1 is UNKNOWN.
    ({'unknown_threshold': 1.0},
     lambda msg: msg.detections and all(
         (d.label == MaskDetection.UNKNOWN) == (d.confidence < 1.0) for d in msg.detections)),
    # CenterFace scores are below 1: no face at all.
    ({'face_score_threshold': 1.0}, lambda msg: len(msg.detections) == 0),
], ids=['unknown_threshold', 'face_score_threshold'])
def test_thresholds_set_at_start_up(tmp_path, params, check):
    domain = ros_domain_id()
    with GraphClient(domain) as client:
        with NodeProcess('detector_node', domain, tmp_path,
                         params={'tracking.enabled': False, **params}) as detector:
            frames = Frames(client, detector)
            msg = frames.next()
            assert client.get_parameters(NODE, list(params)) == params
            assert detector.stop() == 0, detector.log()
    # face_score_threshold is CenterFace's (the default detector when its model is installed).
    assert 'face detector centerface' in detector.log(), detector.log()
    assert check(msg), msg.detections
