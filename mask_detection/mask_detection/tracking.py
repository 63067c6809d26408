"""Track faces across frames, smooth each track's mask label, and report visitor events.

`MaskTracker.update` takes one frame's detections (from the pipeline) and the frame's time stamp
in seconds and returns the same detections with a stable ``track_id`` (> 0) and a smoothed
``label`` / ``confidence``, plus the visitor events of that frame:

- association: Hungarian matching on IoU between each track's predicted box (constant-velocity
  prediction of the box centre) and the detections, with a fallback on the normalised centre
  distance for fast faces whose boxes no longer overlap;
- confirmation: a track announces itself (``VISITOR_APPEARED``) after ``min_hits`` detections,
  so one-frame false positives make no events; an unconfirmed track dies after
  ``max_missed_frames`` frames without a detection;
- smoothing: an exponential moving average of P(mask) with hysteresis thresholds; raw
  ``UNKNOWN`` labels (face too small or uncertain) do not update it;
- leaving: a confirmed track survives misses until it has been unseen for ``leave_timeout``
  seconds of stamp time, then ``VISITOR_LEFT`` is reported and the track ends.

Everything runs on stamps, not the wall clock, so replays and simulated time behave the same.
Call `update` for every processed frame, also those with no faces: that is where tracks expire.
"""
from dataclasses import dataclass, field, fields, replace
import math

import cv2
import numpy as np

from mask_detection.pipeline import MASK, NO_MASK, UNKNOWN

try:
    from scipy.optimize import linear_sum_assignment
except ImportError:  # scipy is optional: greedy matching is nearly as good for a few faces.
    linear_sum_assignment = None

VISITOR_APPEARED = 0
MASK_STATE_CHANGED = 1
VISITOR_LEFT = 2

# Weight of the newest centre displacement in the velocity estimate (an EMA): damps the
# jitter of the face detector's boxes while following real motion within a few frames.
_VELOCITY_GAIN = 0.5
# Cost of an impossible track/detection pair in the assignment problem.
_NO_MATCH = 1e6
# Appearance cue: HSV histogram bins (hue, saturation, value) of the inner part of a face box;
# the inset keeps the background out of it.
_HISTOGRAM_BINS = (8, 4, 4)
_HISTOGRAM_INSET = 0.15


@dataclass
class TrackerConfig:
    """Settings of `MaskTracker` (defaults measured with ``python -m training.track_eval``).

    Attributes:
        iou_threshold: minimum IoU between a track's predicted box and a detection to match.
        max_center_distance: motion-aware fallback for pairs below ``iou_threshold``: largest
            distance between the predicted and the detected box centre, in face sizes (the
            mean of both boxes' sqrt(width * height)); 0 disables the fallback.
        max_size_ratio: the fallback never matches boxes whose sizes differ more than this.
        min_hits: detections a track needs before it is confirmed (``VISITOR_APPEARED``).
        max_missed_frames: an unconfirmed track ends after this many frames in a row
            without a detection (confirmed tracks end by ``leave_timeout`` instead).
        leave_timeout: seconds (of stamp time) a confirmed track may stay unseen before
            ``VISITOR_LEFT`` is reported and the track ends.
        max_prediction_time: the constant-velocity prediction extrapolates at most this many
            seconds past a track's last detection; after that the box stays where it was seen.
        smoothing: weight of the newest frame in the moving average of P(mask) (1 = no
            smoothing). Below 1/3 a single frame can never flip a 0.6 / 0.4 hysteresis.
        smoothed_mask_threshold: the smoothed label becomes MASK when the average P(mask)
            reaches this value (hysteresis: between the two thresholds the label keeps its
            previous value, UNKNOWN before the first decision).
        smoothed_no_mask_threshold: the smoothed label becomes NO_MASK when the average
            P(mask) falls to this value.
    """

    iou_threshold: float = 0.3
    max_center_distance: float = 1.5
    max_size_ratio: float = 2.0
    min_hits: int = 3
    max_missed_frames: int = 5
    leave_timeout: float = 2.0
    max_prediction_time: float = 0.5
    smoothing: float = 0.2
    smoothed_mask_threshold: float = 0.6
    smoothed_no_mask_threshold: float = 0.4

    def __post_init__(self):
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.type in (int, 'int'):
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                    raise ValueError(f'TrackerConfig.{spec.name} must be an integer, '
                                     f'got {value!r}')
            elif isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not math.isfinite(value):
                raise ValueError(f'TrackerConfig.{spec.name} must be a finite number, '
                                 f'got {value!r}')
        _check_range('iou_threshold', self.iou_threshold, 0.0, 1.0, low_open=True)
        _check_range('max_center_distance', self.max_center_distance, 0.0, None)
        _check_range('max_size_ratio', self.max_size_ratio, 1.0, None)
        _check_range('min_hits', self.min_hits, 1, None)
        _check_range('max_missed_frames', self.max_missed_frames, 0, None)
        _check_range('leave_timeout', self.leave_timeout, 0.0, None, low_open=True)
        _check_range('max_prediction_time', self.max_prediction_time, 0.0, None)
        _check_range('smoothing', self.smoothing, 0.0, 1.0, low_open=True)
        _check_range('smoothed_mask_threshold', self.smoothed_mask_threshold, 0.0, 1.0)
        _check_range('smoothed_no_mask_threshold', self.smoothed_no_mask_threshold, 0.0, 1.0)
        if self.smoothed_no_mask_threshold > self.smoothed_mask_threshold:
            raise ValueError(
                'TrackerConfig.smoothed_no_mask_threshold '
                f'({self.smoothed_no_mask_threshold}) must not exceed '
                f'smoothed_mask_threshold ({self.smoothed_mask_threshold})')


def _check_range(name, value, low, high, low_open=False):
    too_low = value <= low if low_open else value < low
    if too_low or (high is not None and value > high):
        bound = ('(' if low_open else '[') + f'{low}, ' + ('inf)' if high is None else f'{high}]')
        raise ValueError(f'TrackerConfig.{name} must be in {bound}, got {value!r}')


@dataclass
class VisitorEvent:
    """A change in the set of visitors (mirrors ``mask_detection_msgs/VisitorEvent``).

    ``label``/``confidence`` are the track's smoothed values; the box is its last detection.
    """

    track_id: int
    event: int
    label: int
    confidence: float
    x: int
    y: int
    width: int
    height: int


@dataclass
class TrackingResult:
    """The detections of one frame with track ids and smoothed labels, and its events."""

    detections: list = field(default_factory=list)
    events: list = field(default_factory=list)


@dataclass(eq=False)  # identity semantics: tracks live in sets
class _Track:
    track_id: int
    box: tuple  # (x, y, width, height) of the last detection
    last_seen: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # centre, pixels/s
    hits: int = 1
    missed_frames: int = 0
    confirmed: bool = False
    mask_probability: float = None  # smoothed P(mask); None until a decisive raw label
    label: int = UNKNOWN
    raw_confidence: float = 0.0  # of the last detection, for an UNKNOWN smoothed label

    @property
    def centre(self):
        x, y, width, height = self.box
        return np.array([x + width / 2.0, y + height / 2.0])

    @property
    def size(self):
        return math.sqrt(max(self.box[2], 1) * max(self.box[3], 1))

    def confidence(self):
        if self.label == MASK:
            return float(self.mask_probability)
        if self.label == NO_MASK:
            return float(1.0 - self.mask_probability)
        return float(self.raw_confidence)

    def event(self, kind):
        x, y, width, height = self.box
        return VisitorEvent(self.track_id, kind, self.label, self.confidence(),
                            int(x), int(y), int(width), int(height))


class MaskTracker:
    """Assign stable track ids to detections, smooth labels per track, emit visitor events."""

    def __init__(self, config=None):
        self.config = TrackerConfig() if config is None else config
        if not isinstance(self.config, TrackerConfig):
            raise ValueError(f'MaskTracker needs a TrackerConfig, got {type(config).__name__}')
        self._tracks = []
        self._next_id = 1
        self._last_stamp = None

    @property
    def tracks(self):
        """Return how many tracks are alive, confirmed or not."""
        return len(self._tracks)

    def reset(self):
        """Forget all tracks and the last stamp; track ids keep increasing (never reused)."""
        self._tracks = []
        self._last_stamp = None

    def update(self, detections, stamp, appearances=None):
        """Track one frame's detections taken at ``stamp`` (seconds); return a TrackingResult.

        ``appearances``: one `face_histogram` per detection (None: no appearance cue).

        A stamp earlier than the previous one (a replay restarting, a sim-time reset) ends
        every track: confirmed ones report ``VISITOR_LEFT`` first, then tracking starts afresh.
        """
        try:
            stamp = float(stamp)
        except (TypeError, ValueError):
            raise ValueError(f'stamp must be a number of seconds, got {stamp!r}') from None
        if not math.isfinite(stamp):
            raise ValueError(f'stamp must be finite, got {stamp!r}')
        events = []
        if self._last_stamp is not None and stamp < self._last_stamp:
            events.extend(track.event(VISITOR_LEFT) for track in self._tracks if track.confirmed)
            self.reset()
        self._last_stamp = stamp

        matches = self._associate(detections, stamp)
        track_of_detection = dict(matches)
        matched_tracks = set(track_of_detection.values())
        output = []
        for index, detection in enumerate(detections):
            track = track_of_detection.get(index)
            if track is None:
                track = _Track(self._next_id, _box_of(detection), stamp)
                self._next_id += 1
                self._tracks.append(track)
                matched_tracks.add(track)
            else:
                self._move(track, detection, stamp)
            was_confirmed = track.confirmed
            previous_label = track.label
            self._smooth_label(track, detection)
            if not track.confirmed and track.hits >= self.config.min_hits:
                track.confirmed = True
                events.append(track.event(VISITOR_APPEARED))
            elif was_confirmed and track.label != previous_label:
                events.append(track.event(MASK_STATE_CHANGED))
            output.append(replace(detection, track_id=track.track_id, label=track.label,
                                  confidence=track.confidence()))

        alive = []
        for track in self._tracks:
            if track not in matched_tracks:
                track.missed_frames += 1
                if track.confirmed:
                    if stamp - track.last_seen > self.config.leave_timeout:
                        events.append(track.event(VISITOR_LEFT))
                        continue
                elif track.missed_frames > self.config.max_missed_frames:
                    continue
            alive.append(track)
        self._tracks = alive
        return TrackingResult(output, events)

    def _associate(self, detections, stamp):
        """Return [(detection index, track)] pairs of the best assignment."""
        if not detections or not self._tracks:
            return []
        cost = np.full((len(detections), len(self._tracks)), _NO_MATCH)
        det_boxes = [_box_of(detection) for detection in detections]
        for column, track in enumerate(self._tracks):
            predicted = self._predict(track, stamp)
            for row, box in enumerate(det_boxes):
                cost[row, column] = self._pair_cost(predicted, box)
        if linear_sum_assignment is not None:
            rows, columns = linear_sum_assignment(cost)
            pairs = zip(rows, columns)
        else:
            pairs = _greedy_assignment(cost)
        return [(int(row), self._tracks[column]) for row, column in pairs
                if cost[row, column] < _NO_MATCH]

    def _predict(self, track, stamp):
        elapsed = min(max(stamp - track.last_seen, 0.0), self.config.max_prediction_time)
        centre = track.centre + track.velocity * elapsed
        width, height = track.box[2], track.box[3]
        return (centre[0] - width / 2.0, centre[1] - height / 2.0, width, height)

    def _pair_cost(self, predicted, box):
        """1 - IoU for overlapping pairs, 1 + normalised distance for the fallback, or none."""
        overlap = _iou(predicted, box)
        if overlap >= self.config.iou_threshold:
            return 1.0 - overlap
        if self.config.max_center_distance <= 0.0:
            return _NO_MATCH
        size_a = math.sqrt(max(predicted[2], 1) * max(predicted[3], 1))
        size_b = math.sqrt(max(box[2], 1) * max(box[3], 1))
        if max(size_a, size_b) > self.config.max_size_ratio * min(size_a, size_b):
            return _NO_MATCH
        distance = math.hypot(predicted[0] + predicted[2] / 2.0 - box[0] - box[2] / 2.0,
                              predicted[1] + predicted[3] / 2.0 - box[1] - box[3] / 2.0)
        distance /= (size_a + size_b) / 2.0
        if distance > self.config.max_center_distance:
            return _NO_MATCH
        return 1.0 + distance / self.config.max_center_distance

    @staticmethod
    def _move(track, detection, stamp):
        old_centre = track.centre
        elapsed = stamp - track.last_seen
        track.box = _box_of(detection)
        if elapsed > 0.0:
            measured = (track.centre - old_centre) / elapsed
            gain = 1.0 if track.hits == 1 else _VELOCITY_GAIN
            track.velocity = track.velocity + gain * (measured - track.velocity)
        track.last_seen = stamp
        track.hits += 1
        track.missed_frames = 0

    def _smooth_label(self, track, detection):
        track.raw_confidence = float(detection.confidence)
        if detection.label == UNKNOWN:
            return
        probability = float(detection.mask_probability)
        if not math.isfinite(probability):
            return
        if track.mask_probability is None:
            track.mask_probability = probability
        else:
            track.mask_probability += self.config.smoothing * (
                probability - track.mask_probability)
        if track.mask_probability >= self.config.smoothed_mask_threshold:
            track.label = MASK
        elif track.mask_probability <= self.config.smoothed_no_mask_threshold:
            track.label = NO_MASK


def face_histogram(image, detection):
    """Return the normalised HSV colour histogram of a detection's face box in a BGR image.

    A cheap appearance cue (128 floats summing to 1; all zeros for an empty box): it tells two
    people at the same place apart (skin, hair, a mask's colour) without a re-id network.
    """
    height, width = image.shape[:2]
    inset_x = int(detection.width * _HISTOGRAM_INSET)
    inset_y = int(detection.height * _HISTOGRAM_INSET)
    x1, y1 = max(int(detection.x) + inset_x, 0), max(int(detection.y) + inset_y, 0)
    x2 = min(int(detection.x + detection.width) - inset_x, width)
    y2 = min(int(detection.y + detection.height) - inset_y, height)
    bins = int(np.prod(_HISTOGRAM_BINS))
    if x2 <= x1 or y2 <= y1:
        return np.zeros(bins, np.float32)
    hsv = cv2.cvtColor(np.ascontiguousarray(image[y1:y2, x1:x2]), cv2.COLOR_BGR2HSV)
    histogram = cv2.calcHist([hsv], [0, 1, 2], None, list(_HISTOGRAM_BINS),
                             [0, 180, 0, 256, 0, 256]).reshape(bins)
    total = float(histogram.sum())
    return histogram / total if total > 0 else histogram


def histogram_distance(a, b):
    """Hellinger distance of two normalised histograms: 0 = same colours, 1 = disjoint."""
    overlap = float(np.sum(np.sqrt(np.asarray(a, np.float64) * np.asarray(b, np.float64))))
    return math.sqrt(max(0.0, 1.0 - overlap))


def _box_of(detection):
    return (float(detection.x), float(detection.y),
            float(detection.width), float(detection.height))


def _iou(a, b):
    """Intersection over union of two (x, y, width, height) boxes."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if width <= 0.0 or height <= 0.0:
        return 0.0
    intersection = width * height
    union = a[2] * a[3] + b[2] * b[3] - intersection
    return intersection / union if union > 0.0 else 0.0


def _greedy_assignment(cost):
    """Pick the cheapest remaining pair until none is left (used without scipy)."""
    pairs = []
    used_rows, used_columns = set(), set()
    for flat in np.argsort(cost, axis=None, kind='stable'):
        row, column = np.unravel_index(flat, cost.shape)
        if cost[row, column] >= _NO_MATCH:
            break
        if row not in used_rows and column not in used_columns:
            pairs.append((row, column))
            used_rows.add(row)
            used_columns.add(column)
    return pairs
