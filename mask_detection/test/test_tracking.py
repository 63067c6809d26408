"""Tests of the tracker on synthetic sequences: ids, label smoothing, visitor events."""
from dataclasses import replace

import pytest

from mask_detection import tracking
from mask_detection.pipeline import Detection, MASK, NO_MASK, UNKNOWN
from mask_detection.tracking import (MASK_STATE_CHANGED, MaskTracker, TrackerConfig,
                                     VISITOR_APPEARED, VISITOR_LEFT)

FPS = 15.0


def face(x, y, size=60, probability=0.9, label=None):
    """Return a detection of a square face; the raw label follows P(mask) unless given."""
    if label is None:
        label = MASK if probability >= 0.5 else NO_MASK
    confidence = probability if label == MASK else 1.0 - probability
    return Detection(x=int(x), y=int(y), width=size, height=size, label=label,
                     mask_probability=probability, confidence=confidence, face_score=0.9)


def run(tracker, frames, start=0):
    """Feed frames (lists of detections) at FPS; return the TrackingResult of each frame."""
    return [tracker.update(detections, (start + index) / FPS)
            for index, detections in enumerate(frames)]


def events_of(results, kind=None):
    return [event for result in results for event in result.events
            if kind is None or event.event == kind]


@pytest.fixture(params=['hungarian', 'greedy'])
def matcher(request, monkeypatch):
    """Run association tests with scipy's Hungarian solver and with the greedy fallback."""
    if request.param == 'greedy':
        monkeypatch.setattr(tracking, 'linear_sum_assignment', None)
    elif tracking.linear_sum_assignment is None:
        pytest.skip('scipy is not installed: only the greedy matcher is available')
    return request.param


def test_moving_face_keeps_one_id(matcher):
    tracker = MaskTracker(TrackerConfig())
    results = run(tracker, [[face(20 + 8 * step, 100 + 2 * step)] for step in range(40)])
    ids = {result.detections[0].track_id for result in results}
    assert len(ids) == 1 and ids.pop() > 0
    assert len(events_of(results, VISITOR_APPEARED)) == 1
    assert events_of(results, VISITOR_LEFT) == []


def test_fast_face_without_overlap_is_followed_by_motion(matcher):
    # 70 px per frame with a 60 px face: consecutive boxes never overlap.
    frames = [[face(10 + 70 * step, 200)] for step in range(12)]
    ids = {result.detections[0].track_id for result in run(MaskTracker(), frames)}
    assert len(ids) == 1
    # Without the motion-aware fallback every frame starts a new track.
    no_fallback = MaskTracker(TrackerConfig(max_center_distance=0.0))
    ids = {result.detections[0].track_id for result in run(no_fallback, frames)}
    assert len(ids) == len(frames)


def test_face_missing_for_three_frames_keeps_its_id(matcher):
    frames = [[face(100 + 3 * step, 100)] for step in range(10)]
    frames += [[], [], []]
    frames += [[face(100 + 3 * step, 100)] for step in range(13, 23)]
    results = run(MaskTracker(), frames)
    ids = {det.track_id for result in results for det in result.detections}
    assert len(ids) == 1
    assert len(events_of(results, VISITOR_APPEARED)) == 1
    assert events_of(results, VISITOR_LEFT) == []


def test_crossing_faces_keep_their_ids(matcher):
    # A masked face moves right, an unmasked one left, on nearly the same line: they overlap
    # fully in the middle frames, then separate again.
    frames = []
    for step in range(31):
        frames.append([face(40 + 10 * step, 100, probability=0.95),
                       face(340 - 10 * step, 104, probability=0.05)])
    results = run(MaskTracker(), frames)
    first, second = results[0].detections
    for result in results:
        masked, unmasked = result.detections  # the input order is kept
        assert masked.track_id == first.track_id
        assert unmasked.track_id == second.track_id
    assert first.track_id != second.track_id
    assert events_of(results, MASK_STATE_CHANGED) == []
    assert len(events_of(results, VISITOR_APPEARED)) == 2


def test_single_misclassified_frame_neither_flips_nor_emits():
    frames = [[face(100, 100, probability=0.92)] for _ in range(20)]
    frames[10] = [face(100, 100, probability=0.02)]  # one confidently wrong frame
    results = run(MaskTracker(), frames)
    labels = [result.detections[0].label for result in results]
    assert labels == [MASK] * 20
    assert events_of(results, MASK_STATE_CHANGED) == []
    # The raw per-frame probability is passed through untouched.
    assert results[10].detections[0].mask_probability == 0.02


def test_no_single_frame_flips_at_the_edge_of_the_hysteresis():
    # Even from just past the NO_MASK threshold one frame at P(mask) = 1 cannot reach MASK.
    tracker = MaskTracker()
    run(tracker, [[face(100, 100, probability=0.0)]] * 5)
    # Creep up to just below 0.4 without crossing 0.6.
    probability = 0.0
    frames = 0
    while True:
        nxt = probability + TrackerConfig().smoothing * (0.55 - probability)
        if nxt > 0.4:
            break
        probability = nxt
        frames += 1
    run(tracker, [[face(100, 100, probability=0.55)]] * frames, start=5)
    result = tracker.update([face(100, 100, probability=1.0)], (5 + frames) / FPS)
    assert result.detections[0].label == NO_MASK
    assert result.events == []


def test_real_state_change_emits_exactly_one_event():
    frames = [[face(100, 100, probability=0.9)] for _ in range(15)]
    frames += [[face(100, 100, probability=0.1)] for _ in range(15)]
    results = run(MaskTracker(), frames)
    changes = events_of(results, MASK_STATE_CHANGED)
    assert len(changes) == 1
    assert changes[0].label == NO_MASK
    assert changes[0].track_id == results[0].detections[0].track_id
    assert 0.6 <= changes[0].confidence <= 1.0
    assert results[-1].detections[0].label == NO_MASK
    # The smoothed confidence is the probability of the smoothed label.
    last = results[-1].detections[0]
    assert last.confidence > 0.85


def test_unknown_raw_labels_do_not_update_the_state():
    frames = [[face(100, 100, probability=0.9)] for _ in range(5)]
    frames += [[face(100, 100, probability=0.05, label=UNKNOWN)] for _ in range(10)]
    results = run(MaskTracker(), frames)
    assert [result.detections[0].label for result in results[4:]] == [MASK] * 11
    assert events_of(results, MASK_STATE_CHANGED) == []


def test_label_is_unknown_until_decided_then_change_is_reported():
    frames = [[face(100, 100, probability=0.5, label=UNKNOWN)] for _ in range(5)]
    frames += [[face(100, 100, probability=0.95)] for _ in range(3)]
    results = run(MaskTracker(), frames)
    appeared = events_of(results, VISITOR_APPEARED)
    assert len(appeared) == 1 and appeared[0].label == UNKNOWN
    assert appeared[0].confidence == pytest.approx(0.5)
    assert results[-1].detections[0].label == MASK
    changes = events_of(results, MASK_STATE_CHANGED)
    assert [change.label for change in changes] == [MASK]


def test_appeared_once_after_confirmation_and_not_for_a_one_frame_blip():
    config = TrackerConfig(min_hits=3)
    frames = [[face(100, 100)], [face(100, 100), face(400, 300)], [face(100, 100)],
              [face(100, 100)], [face(100, 100)]]
    results = run(MaskTracker(config), frames)
    appeared = events_of(results, VISITOR_APPEARED)
    assert len(appeared) == 1
    # Confirmed on the third hit, with the box of that frame.
    assert results[2].events == appeared
    assert (appeared[0].x, appeared[0].y, appeared[0].width) == (100, 100, 60)
    # The blip got an id of its own but never announced itself or left.
    blip = results[1].detections[1]
    assert blip.track_id not in (0, appeared[0].track_id)
    more = run(MaskTracker(config), [[face(100, 100)]] * 3)
    assert len(events_of(more, VISITOR_APPEARED)) == 1


def test_left_after_the_timeout_in_stamp_time():
    config = TrackerConfig(leave_timeout=1.0)
    tracker = MaskTracker(config)
    results = run(tracker, [[face(100, 100)] for _ in range(5)])
    track_id = results[0].detections[0].track_id
    last_seen = 4 / FPS
    # Still present just before the timeout, gone right after it.
    assert tracker.update([], last_seen + 0.99).events == []
    left = tracker.update([], last_seen + 1.01).events
    assert [(event.event, event.track_id) for event in left] == [(VISITOR_LEFT, track_id)]
    assert (left[0].x, left[0].y, left[0].label) == (100, 100, MASK)
    assert tracker.tracks == 0
    # Coming back later is a new visitor with a higher id.
    back = run(tracker, [[face(100, 100)]] * 3, start=60)
    assert back[-1].detections[0].track_id > track_id
    assert len(events_of(back, VISITOR_APPEARED)) == 1


def test_track_ids_increase_and_are_positive(matcher):
    tracker = MaskTracker(TrackerConfig(min_hits=1, leave_timeout=0.1))
    seen = []
    for visitor in range(4):
        results = run(tracker, [[face(50 + 100 * visitor, 100)]] * 3, start=10 * visitor)
        seen.append(results[0].detections[0].track_id)
    assert seen == sorted(set(seen)) and seen[0] >= 1


def test_stamps_going_backwards_end_all_tracks_with_left_events():
    tracker = MaskTracker()
    first = run(tracker, [[face(100, 100)]] * 5, start=100)
    old_id = first[0].detections[0].track_id
    restarted = tracker.update([face(100, 100)], 0.0)
    assert [(event.event, event.track_id) for event in restarted.events] == [
        (VISITOR_LEFT, old_id)]
    assert restarted.detections[0].track_id > old_id
    # Equal stamps are not a jump.
    again = tracker.update([face(100, 100)], 0.0)
    assert again.events == []
    assert again.detections[0].track_id == restarted.detections[0].track_id


def test_reset_forgets_tracks_but_never_reuses_ids():
    tracker = MaskTracker()
    first = run(tracker, [[face(100, 100)]] * 3)[0].detections[0].track_id
    tracker.reset()
    assert tracker.tracks == 0
    results = run(tracker, [[face(100, 100)]] * 3)
    assert results[0].detections[0].track_id > first
    assert len(events_of(results, VISITOR_APPEARED)) == 1


def test_detections_are_new_objects_with_the_input_order():
    detections = [face(300, 100, probability=0.1), face(100, 100, probability=0.9)]
    originals = [replace(det) for det in detections]
    result = MaskTracker().update(detections, 0.0)
    assert detections == originals  # inputs untouched
    assert [(det.x, det.label) for det in result.detections] == [(300, NO_MASK), (100, MASK)]
    assert all(det.track_id > 0 for det in result.detections)
    assert MaskTracker().update([], 1.0).detections == []


@pytest.mark.parametrize('settings, message', [
    ({'iou_threshold': 0.0}, 'iou_threshold'),
    ({'iou_threshold': 1.5}, 'iou_threshold'),
    ({'max_center_distance': -1.0}, 'max_center_distance'),
    ({'max_size_ratio': 0.5}, 'max_size_ratio'),
    ({'min_hits': 0}, 'min_hits'),
    ({'min_hits': 2.5}, 'min_hits must be an integer'),
    ({'max_missed_frames': -1}, 'max_missed_frames'),
    ({'leave_timeout': 0.0}, 'leave_timeout'),
    ({'leave_timeout': float('nan')}, 'finite'),
    ({'max_prediction_time': -0.1}, 'max_prediction_time'),
    ({'smoothing': 0.0}, 'smoothing'),
    ({'smoothing': '0.3'}, 'smoothing must be a finite number'),
    ({'smoothed_mask_threshold': 0.3}, 'must not exceed'),
    ({'smoothed_no_mask_threshold': -0.1}, 'smoothed_no_mask_threshold'),
])
def test_invalid_config_is_rejected_with_a_clear_message(settings, message):
    with pytest.raises(ValueError, match=message):
        TrackerConfig(**settings)


def test_invalid_stamps_and_config_objects_are_rejected():
    tracker = MaskTracker()
    with pytest.raises(ValueError, match='stamp must be finite'):
        tracker.update([], float('inf'))
    with pytest.raises(ValueError, match='stamp must be a number'):
        tracker.update([], 'now')
    with pytest.raises(ValueError, match='TrackerConfig'):
        MaskTracker({'min_hits': 2})


def test_event_constants_match_the_message():
    assert (VISITOR_APPEARED, MASK_STATE_CHANGED, VISITOR_LEFT) == (0, 1, 2)
