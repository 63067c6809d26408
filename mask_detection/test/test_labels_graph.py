"""Mask labels against annotated truth, through the installed detector_node on a DDS graph.

Real photos of ../shared/data/facemask-detection-dev (PASCAL VOC boxes, see its SOURCE.md) that
training/heldout_split.json holds out, so the shipped model never trained on them.  The photos
are chosen by a rule on the annotations alone (never on what the pipeline says): held-out
photos whose every annotated face is ``with_mask`` or ``without_mask`` and at least
MIN_FACE_PX on its short side, the first PHOTOS_PER_CLASS of each class by file name.  Each
is published as a sensor_msgs/Image; each detection is matched to an annotated box by IoU,
and its label must be the annotated one.
"""
import json
from pathlib import Path
import xml.etree.ElementTree as ElementTree

from conftest import ros_domain_id, shared_dataset
import cv2
from graph_utils import GraphClient, NodeProcess, REPO_ROOT
import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from mask_detection.image_codec import array_to_image_msg
from mask_detection_msgs.msg import MaskDetection, MaskDetectionArray

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
DATASET = 'facemask-detection-dev'
HELDOUT_SPLIT = REPO_ROOT / 'training' / 'heldout_split.json'
TRUTH_LABELS = {'with_mask': MaskDetection.MASK, 'without_mask': MaskDetection.NO_MASK}
MIN_FACE_PX = 48
PHOTOS_PER_CLASS = 5
# A detected box is that annotated face when they overlap this much (CenterFace's boxes are
# tighter than the annotators' and a little shifted: IoU around 0.5-0.7 for the same face).
MATCH_IOU = 0.4
MIN_AGREEMENT = 0.9
MIN_MATCHED = {MaskDetection.MASK: 6, MaskDetection.NO_MASK: 4}    # of 8 and 5 annotated
# Image stamps this far apart: each photo is a new scene for the tracker (leave_timeout 2 s).
STAMP_STEP_S = 100
# A BGR colour per label, written out: the annotated image must use these, not a table read
# from the code under test (drawing.COLORS).
LABEL_BGR = {MaskDetection.MASK: (0, 200, 0), MaskDetection.NO_MASK: (0, 0, 255)}


def read_voc(path, width, height):
    """Return [(class name, (x, y, w, h))] of a VOC annotation, boxes clipped to the image."""
    faces = []
    for item in ElementTree.parse(path).findall('object'):
        box = item.find('bndbox')
        x1, y1, x2, y2 = (int(float(box.find(key).text))
                          for key in ('xmin', 'ymin', 'xmax', 'ymax'))
        x1, y1 = max(x1, 0), max(y1, 0)
        x2, y2 = min(x2, width), min(y2, height)      # some boxes end at width + 1
        faces.append((item.find('name').text, (x1, y1, x2 - x1, y2 - y1)))
    return faces


def select_photos(data):
    """Return [(image path, [(label, box)])] chosen by the rule of the module docstring."""
    split = json.loads(HELDOUT_SPLIT.read_text())['sets'][DATASET]['files']
    chosen = {label: [] for label in TRUTH_LABELS.values()}
    for relative in sorted(split):
        image_path = data / relative
        image = cv2.imread(str(image_path))
        assert image is not None, f'cannot read {image_path}'
        faces = read_voc(data / 'annotations' / (Path(relative).stem + '.xml'),
                         image.shape[1], image.shape[0])
        if not faces or any(name not in TRUTH_LABELS or min(box[2:]) < MIN_FACE_PX
                            for name, box in faces):
            continue
        labels = {TRUTH_LABELS[name] for name, _ in faces}
        if len(labels) == 1:
            label, = labels
            if len(chosen[label]) < PHOTOS_PER_CLASS:
                chosen[label].append(
                    (image_path, [(TRUTH_LABELS[name], box) for name, box in faces]))
    for label, photos in chosen.items():
        assert len(photos) == PHOTOS_PER_CLASS, (
            f'{DATASET}: only {len(photos)} held-out photos of label {label} fit the rule')
    return chosen[MaskDetection.MASK] + chosen[MaskDetection.NO_MASK]


def iou(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter_w = min(ax + aw, bx + bw) - max(ax, bx)
    inter_h = min(ay + ah, by + bh) - max(ay, by)
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    return inter / float(aw * ah + bw * bh - inter)


def match(detections, truths):
    """Greedy one-to-one matching by IoU; return [(detection, truth label)]."""
    pairs = sorted(((iou((d.x, d.y, d.width, d.height), box), i, j)
                    for i, d in enumerate(detections) for j, (_, box) in enumerate(truths)),
                   reverse=True)
    used_d, used_t, matched = set(), set(), []
    for overlap, i, j in pairs:
        if overlap < MATCH_IOU:
            break
        if i not in used_d and j not in used_t:
            used_d.add(i)
            used_t.add(j)
            matched.append((detections[i], truths[j][0]))
    return matched


def outline_share(image, detection, colour):
    """Share of the box outline's pixels that are exactly ``colour`` (BGR)."""
    height, width = image.shape[:2]
    x1, y1 = max(detection.x, 0), max(detection.y, 0)
    x2 = min(detection.x + detection.width, width) - 1
    y2 = min(detection.y + detection.height, height) - 1
    outline = np.concatenate([image[y2, x1:x2 + 1], image[y1:y2 + 1, x1],
                              image[y1:y2 + 1, x2]])
    return float(np.all(outline == np.array(colour, np.uint8), axis=1).mean())


@pytest.mark.graph
def test_labels_agree_with_annotated_truth_on_held_out_photos(tmp_path):
    photos = select_photos(shared_dataset(DATASET))
    domain = ros_domain_id()
    results = {}      # stamp seconds -> MaskDetectionArray
    pictures = {}     # stamp seconds -> annotated Image
    with GraphClient(domain) as client:
        client.node.create_subscription(
            MaskDetectionArray, 'detections',
            lambda msg: results.setdefault(msg.header.stamp.sec, msg), RELIABLE)
        client.node.create_subscription(
            Image, 'annotated_image',
            lambda msg: pictures.setdefault(msg.header.stamp.sec, msg), RELIABLE)
        # Default parameters: the shipped model, the default face detector, tracking on.
        with NodeProcess('detector_node', domain, tmp_path) as detector:
            # Start-up (imports, models) can take long on a loaded machine.
            publisher = client.publisher(Image, 'image', RELIABLE, timeout=60.0)
            for index, (path, _) in enumerate(photos):
                stamp = (index + 1) * STAMP_STEP_S
                msg = array_to_image_msg(cv2.imread(str(path)), 'bgr8', header=Header(
                    frame_id='labels_camera'))
                msg.header.stamp.sec = stamp
                assert client.publish_until(
                    publisher, msg, lambda: stamp in results and stamp in pictures,
                    timeout=30), f'no detections for {path.name}\n{detector.log()}'
            assert detector.stop() == 0, detector.log()

    agreeing, disagreeing = [], []
    matched_per_label = {label: 0 for label in TRUTH_LABELS.values()}
    for index, (path, truths) in enumerate(photos):
        stamp = (index + 1) * STAMP_STEP_S
        array = results[stamp]
        assert array.header.frame_id == 'labels_camera'
        image = cv2.imread(str(path))
        assert (array.image_width, array.image_height) == (image.shape[1], image.shape[0])
        picture = pictures[stamp]
        pixels = np.frombuffer(picture.data, np.uint8).reshape(
            picture.height, picture.width, 3)
        for detection, truth in match(array.detections, truths):
            matched_per_label[truth] += 1
            where = f'{path.name} ({detection.x}, {detection.y}, {detection.width}, ' \
                    f'{detection.height}): label {detection.label}, truth {truth}'
            (agreeing if detection.label == truth else disagreeing).append(where)
            if detection.label in LABEL_BGR:
                # Written the label's colour on the annotated image (the source has none).
                assert outline_share(pixels, detection, LABEL_BGR[detection.label]) >= 0.5, \
                    where
                assert outline_share(image, detection, LABEL_BGR[detection.label]) < 0.1
    for label, minimum in MIN_MATCHED.items():
        assert matched_per_label[label] >= minimum, (
            f'only {matched_per_label[label]} annotated faces of label {label} found: '
            f'{matched_per_label}')
    share = len(agreeing) / (len(agreeing) + len(disagreeing))
    assert share >= MIN_AGREEMENT, f'{share:.0%} agree; wrong: {disagreeing}'
