"""Tracking through the installed detector_node on a real DDS graph, with real webcam photos.

A greeting robot's case (issue 15): a masked visitor stands in front of the camera; one second
later (by the image stamps, no frame in between) an unmasked visitor stands at the same place.
The first MaskDetectionArray of the new visitor must say NO_MASK, and visitor_events must tell
that the first visitor left and a new one appeared.
"""
from builtin_interfaces.msg import Time
from conftest import ros_domain_id, shared_dataset
import cv2
from graph_utils import GraphClient, NodeProcess
import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from mask_detection import classifier, detector_node
from mask_detection.image_codec import array_to_image_msg
from mask_detection.qos import visitor_events_qos
from mask_detection.tracking import TrackerConfig
from mask_detection_msgs.msg import MaskDetection, MaskDetectionArray, VisitorEvent

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# Two different people in ../shared/data/real-world-masks (webcam frames, see its SOURCE.md
# files); the shipped classifier is sure of both (P(mask) 0.98 and 0.07).
MASKED_VISITOR = 'hiluf_webcam/with_mask/hil_03dfc7e77702_f0.jpg'
UNMASKED_VISITOR = 'collins_webcam/without_mask/col_1c7beeaaefe3_f0.jpg'
FRAME_PERIOD_S = 0.1
GAP_S = 1.0


def visitor_frame(path):
    """Return a 640x480 frame with the photo (a face crop) at the same place, whoever it is."""
    photo = cv2.imread(str(path))
    assert photo is not None, f'cannot read {path}'
    frame = np.full((480, 640, 3), 128, np.uint8)
    frame[120:360, 200:440] = cv2.resize(photo, (240, 240), interpolation=cv2.INTER_AREA)
    return frame


def image_at(frame, seconds):
    header = Header(frame_id='entrance_camera',
                    stamp=Time(sec=int(seconds), nanosec=int(round(seconds % 1 * 1e9))))
    return array_to_image_msg(frame, 'bgr8', header=header)


def seconds_of(header):
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def test_tracking_parameters_are_described_with_their_ranges():
    specs = {spec.name: spec for spec in detector_node.parameter_specs()
             if spec.name.startswith('tracking.') and spec.name != 'tracking.enabled'}
    assert set(specs) == {f'tracking.{name}' for name in TrackerConfig.__dataclass_fields__}
    for name, spec in specs.items():
        descriptor = spec.descriptor()
        ranges = descriptor.integer_range or descriptor.floating_point_range
        assert len(ranges) == 1, name
        assert ranges[0].from_value <= spec.default <= ranges[0].to_value, name
        assert len(spec.description) > 30, name
    # Durations say that they are seconds.
    for name in ('leave_timeout', 'max_prediction_time', 'label_time_constant',
                 'appearance_gap'):
        assert 'second' in specs[f'tracking.{name}'].description, name
    assert 'per second' in specs['tracking.max_speed'].description


@pytest.mark.graph
def test_new_visitor_at_the_same_place_a_second_later_has_its_own_label(tmp_path):
    data = shared_dataset('real-world-masks')
    model = classifier.default_model_path()
    assert model.is_file(), f'the shipped classifier is missing: {model}'
    masked = visitor_frame(data / MASKED_VISITOR)
    unmasked = visitor_frame(data / UNMASKED_VISITOR)
    masked_stamps = [100.0 + FRAME_PERIOD_S * index for index in range(6)]
    unmasked_stamps = [masked_stamps[-1] + GAP_S + FRAME_PERIOD_S * index for index in range(5)]
    domain = ros_domain_id()
    with GraphClient(domain) as client:
        arrays = client.collect(MaskDetectionArray, 'detections', RELIABLE)
        events = client.collect(VisitorEvent, 'visitor_events', RELIABLE)
        # leave_timeout far above the test's wall time: VISITOR_LEFT may only come from the
        # new visitor taking the place, never from a slow (loaded) machine's silence.
        with NodeProcess('detector_node', domain, tmp_path, params={
                'model_path': str(model), 'tracking.leave_timeout': 30.0}) as detector:
            publisher = client.publisher(Image, 'image', RELIABLE, timeout=60.0)
            # A frame without a face first: the node is up and its publishers matched.
            assert client.publish_until(
                publisher, image_at(np.full((480, 640, 3), 128, np.uint8), 99.0),
                lambda: arrays, timeout=60), detector.log()
            assert client.spin_until(
                lambda: client.node.count_publishers('visitor_events') >= 1, timeout=10)
            for frame, stamps in ((masked, masked_stamps), (unmasked, unmasked_stamps)):
                for stamp in stamps:
                    assert client.publish_until(
                        publisher, image_at(frame, stamp),
                        lambda: any(abs(seconds_of(msg.header) - stamp) < 1e-6
                                    for msg in arrays), timeout=30), detector.log()
            assert client.spin_until(lambda: len(events) >= 3, timeout=10), \
                f'{events}\n{detector.log()}'
            assert detector.stop() == 0, detector.log()

    def array_at(stamp):
        return next(msg for msg in arrays if abs(seconds_of(msg.header) - stamp) < 1e-6)

    first_visitor = [array_at(stamp) for stamp in masked_stamps]
    second_visitor = [array_at(stamp) for stamp in unmasked_stamps]
    for msg in first_visitor + second_visitor:
        assert len(msg.detections) == 1, msg.detections
    # What the classifier says per frame (mask_probability stays raw): the premise.
    assert all(msg.detections[0].mask_probability >= 0.6 for msg in first_visitor)
    assert all(msg.detections[0].mask_probability <= 0.4 for msg in second_visitor)

    old_id = first_visitor[0].detections[0].track_id
    assert {msg.detections[0].track_id for msg in first_visitor} == {old_id}
    assert first_visitor[-1].detections[0].label == MaskDetection.MASK
    # The new visitor's very first array: its own label, on a track of its own.
    first = second_visitor[0].detections[0]
    assert first.label == MaskDetection.NO_MASK, first
    new_id = first.track_id
    assert new_id not in (0, old_id)
    assert [msg.detections[0].label for msg in second_visitor] == [MaskDetection.NO_MASK] * 5
    assert {msg.detections[0].track_id for msg in second_visitor} == {new_id}

    # The greeting robot hears: masked visitor appeared; it left when the other one took its
    # place (that frame's stamp); an unmasked visitor appeared (after tracking.min_hits = 3).
    summary = [(event.event, event.track_id, event.label) for event in events]
    assert summary == [
        (VisitorEvent.VISITOR_APPEARED, old_id, MaskDetection.MASK),
        (VisitorEvent.VISITOR_LEFT, old_id, MaskDetection.MASK),
        (VisitorEvent.VISITOR_APPEARED, new_id, MaskDetection.NO_MASK)], summary
    assert seconds_of(events[1].header) == pytest.approx(unmasked_stamps[0])
    # min_hits = 3 frames; publish_until may have sent a frame twice on a slow machine.
    assert min(abs(seconds_of(events[2].header) - stamp) for stamp in unmasked_stamps[:3]) \
        < 1e-6
    assert all(event.header.frame_id == 'entrance_camera' for event in events)


@pytest.mark.graph
def test_a_subscriber_that_starts_late_still_hears_the_visitor_arrive(tmp_path):
    """visitor_events is transient local: a greeter started after the arrival still hears it."""
    data = shared_dataset('real-world-masks')
    model = classifier.default_model_path()
    masked = visitor_frame(data / MASKED_VISITOR)
    domain = ros_domain_id()
    with GraphClient(domain) as client:
        arrays = client.collect(MaskDetectionArray, 'detections', RELIABLE)
        with NodeProcess('detector_node', domain, tmp_path, params={
                'model_path': str(model), 'tracking.leave_timeout': 30.0}) as detector:
            publisher = client.publisher(Image, 'image', RELIABLE, timeout=60.0)
            # tracking.min_hits = 3: the visitor has appeared once a detection has a track id.
            for index in range(6):
                stamp = 200.0 + FRAME_PERIOD_S * index
                assert client.publish_until(
                    publisher, image_at(masked, stamp),
                    lambda: any(abs(seconds_of(msg.header) - stamp) < 1e-6
                                for msg in arrays), timeout=30), detector.log()
            track_ids = {d.track_id for msg in arrays for d in msg.detections} - {0}
            assert len(track_ids) == 1, [msg.detections for msg in arrays]
            # Only now does the late subscriber start, with the topic's QoS.
            late = client.collect(VisitorEvent, 'visitor_events', visitor_events_qos())
            assert client.spin_until(lambda: late, timeout=15), detector.log()
            assert detector.running, detector.log()
    assert [(event.event, event.track_id, event.label) for event in late] == [
        (VisitorEvent.VISITOR_APPEARED, track_ids.pop(), MaskDetection.MASK)]
