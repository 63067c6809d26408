"""Track faces across frames, smooth each track's mask label, and report visitor events.

`MaskTracker.update` takes one frame's detections (from the pipeline), the frame's time stamp
in seconds and optionally each face's colour histogram (`face_histogram`), and returns the same
detections with a stable ``track_id`` (> 0) and a smoothed ``label`` / ``confidence``, plus the
visitor events of that frame.  Everything is a matter of stamp time, not of frame counts, so
the tracker behaves the same at 30 Hz, at 5 Hz (``max_rate_hz``) and across a gap:

- association: Hungarian matching on IoU between each track's predicted box (constant-velocity
  prediction of the box centre) and the detections, with a fallback on the centre distance for
  fast faces whose boxes no longer overlap.  Gated by the time since the track was last seen:
  the face may have moved ``position_tolerance + max_speed * dt`` face sizes from where it was
  predicted, and changed size by ``size_tolerance * max_size_change ** dt``; with histograms,
  its colours may differ by ``max_appearance_distance`` at most once it has been unseen for
  ``appearance_gap``.  A face beyond these starts a
  new track, and a confirmed visitor whose place it takes has left (``VISITOR_LEFT`` at once);
- confirmation: a track announces itself (``VISITOR_APPEARED``) after ``min_hits`` detections,
  so one-frame false positives make no events; an unconfirmed track dies after
  ``max_missed_frames`` processed frames in a row without a detection.  These two count
  frames on purpose: they weigh the detector's evidence, which comes per processed frame (in
  seconds, a 2 Hz robot could never confirm anyone);
- smoothing: an exponential moving average of P(mask) with the time constant
  ``label_time_constant``: a detection ``dt`` seconds after the last one weighs
  ``1 - exp(-dt / label_time_constant)``, so evidence fades with time, not with frames, and
  after a gap the old state is forgotten (it would weigh < 10 %: the new frame decides alone).
  Hysteresis thresholds on the average; raw ``UNKNOWN`` labels (face too small or uncertain) do
  not update it;
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
# Weight of the newest face histogram in a track's appearance (an EMA over its detections).
_APPEARANCE_GAIN = 0.3
# The label state is forgotten when it would weigh less than this in the average: after
# ln(10) = 2.3 time constants without a decisive detection the new frame decides alone (and
# the hysteresis, which is there against odd frames among recent evidence, does not hold it).
_FORGOTTEN = 0.1
# Cost of an impossible track/detection pair in the assignment problem.
_NO_MATCH = 1e6
# Appearance cue: hue x saturation histogram bins of the inner part of a face box (no value
# channel: brightness changes with exposure, not with the person); the inset keeps the
# background out of it.
_HISTOGRAM_BINS = (16, 8)
_HISTOGRAM_INSET = 0.15


def _limits(low, high, low_open=False):
    """Field metadata: the inclusive (or low-open) range of a setting (the node's ROS range)."""
    return {'range': (low, high), 'low_open': low_open}


@dataclass
class TrackerConfig:
    """Settings of `MaskTracker` (defaults measured with ``python -m training.track_eval``).

    Attributes:
        iou_threshold: minimum IoU between a track's predicted box and a detection to match.
        position_tolerance: face sizes (the mean of both boxes' sqrt(width * height)) a
            detection may lie from the track's predicted centre however short the time
            (detector jitter); the fallback for pairs below iou_threshold.
        max_speed: face sizes per second a face may move off its predicted path: the
            allowed distance grows by this times the seconds since the track was last seen
            (0 with position_tolerance 0: no fallback, IoU only).
        size_tolerance: a detection's size may differ from the track's by this factor
            however short the time (detector jitter).
        max_size_change: factor per second by which a face may grow or shrink (moving
            towards or away from the camera) on top of size_tolerance.
        max_appearance_distance: largest Hellinger distance (0-1) between the colour
            histogram of a detection's face box and the track's; beyond it another person
            stands there (a new track).  0 = no appearance cue.
        appearance_gap: seconds a track must have been unseen before its colours are
            compared: in view, a face is followed by its motion, and one that puts a mask
            on changes colours but stays the same visitor.
        min_hits: detections (frames: evidence against one-frame false positives, whatever
            the rate) a track needs before it is confirmed (VISITOR_APPEARED).
        max_missed_frames: an unconfirmed track ends after this many processed frames in a
            row without a detection (frames: evidence, see min_hits; confirmed tracks end by
            leave_timeout instead).
        leave_timeout: seconds (of stamp time) a confirmed track may stay unseen before
            VISITOR_LEFT is reported and the track ends.
        max_prediction_time: the constant-velocity prediction extrapolates at most this many
            seconds past a track's last detection; after that the box stays where it was seen.
        label_time_constant: seconds; a detection dt seconds after the track's previous
            decisive one weighs 1 - exp(-dt / label_time_constant) in the moving average of
            P(mask): smaller follows a real change sooner, larger resists odd frames more.
        smoothed_mask_threshold: the smoothed label becomes MASK when the average P(mask)
            reaches this value (hysteresis: between the two thresholds the label keeps its
            previous value; a fresh state takes the pipeline's label of its frame).
        smoothed_no_mask_threshold: the smoothed label becomes NO_MASK when the average
            P(mask) falls to this value.
    """

    iou_threshold: float = field(default=0.2, metadata=_limits(0.0, 1.0, low_open=True))
    position_tolerance: float = field(default=1.0, metadata=_limits(0.0, 100.0))
    max_speed: float = field(default=20.0, metadata=_limits(0.0, 1000.0))
    size_tolerance: float = field(default=1.5, metadata=_limits(1.0, 100.0))
    max_size_change: float = field(default=2.0, metadata=_limits(1.0, 100.0))
    max_appearance_distance: float = field(default=0.5, metadata=_limits(0.0, 1.0))
    appearance_gap: float = field(default=0.3, metadata=_limits(0.0, 3600.0))
    min_hits: int = field(default=3, metadata=_limits(1, 1000))
    max_missed_frames: int = field(default=5, metadata=_limits(0, 1000))
    leave_timeout: float = field(default=2.0, metadata=_limits(0.0, 3600.0, low_open=True))
    max_prediction_time: float = field(default=0.5, metadata=_limits(0.0, 3600.0))
    label_time_constant: float = field(default=0.08,
                                       metadata=_limits(0.0, 3600.0, low_open=True))
    smoothed_mask_threshold: float = field(default=0.6, metadata=_limits(0.0, 1.0))
    smoothed_no_mask_threshold: float = field(default=0.4, metadata=_limits(0.0, 1.0))

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
            low, high = spec.metadata['range']
            _check_range(spec.name, value, low, high, spec.metadata['low_open'])
        if self.smoothed_no_mask_threshold > self.smoothed_mask_threshold:
            raise ValueError(
                'TrackerConfig.smoothed_no_mask_threshold '
                f'({self.smoothed_no_mask_threshold}) must not exceed '
                f'smoothed_mask_threshold ({self.smoothed_mask_threshold})')


def _check_range(name, value, low, high, low_open=False):
    too_low = value <= low if low_open else value < low
    if too_low or value > high:
        bound = ('(' if low_open else '[') + f'{low}, {high}]'
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
    label_stamp: float = None  # stamp of the last decisive raw label
    label: int = UNKNOWN
    raw_confidence: float = 0.0  # of the last detection, for an UNKNOWN smoothed label
    histogram: np.ndarray = None  # appearance: EMA of the face histograms

    @property
    def centre(self):
        x, y, width, height = self.box
        return np.array([x + width / 2.0, y + height / 2.0])

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

    @property
    def uses_appearance(self):
        """Whether `update` wants face histograms (max_appearance_distance > 0)."""
        return self.config.max_appearance_distance > 0.0

    def reset(self):
        """Forget all tracks and the last stamp; track ids keep increasing (never reused)."""
        self._tracks = []
        self._last_stamp = None

    def update(self, detections, stamp, appearances=None):
        """Track one frame's detections taken at ``stamp`` (seconds); return a TrackingResult.

        ``appearances``: one `face_histogram` per detection, or None (no appearance cue for
        this frame).  A stamp earlier than the previous one (a replay restarting, a sim-time
        reset) ends every track: confirmed ones report ``VISITOR_LEFT`` first, then tracking
        starts afresh.
        """
        try:
            stamp = float(stamp)
        except (TypeError, ValueError):
            raise ValueError(f'stamp must be a number of seconds, got {stamp!r}') from None
        if not math.isfinite(stamp):
            raise ValueError(f'stamp must be finite, got {stamp!r}')
        if appearances is not None and len(appearances) != len(detections):
            raise ValueError(f'{len(appearances)} appearances for {len(detections)} detections')
        if appearances is None or not self.uses_appearance:
            appearances = [None] * len(detections)
        events = []
        if self._last_stamp is not None and stamp < self._last_stamp:
            events.extend(track.event(VISITOR_LEFT) for track in self._tracks if track.confirmed)
            self.reset()
        self._last_stamp = stamp
        self._expire(stamp, events)

        matches = self._associate(detections, stamp, appearances)
        track_of_detection = dict(matches)
        matched_tracks = set(track_of_detection.values())
        replaced = set()
        output = []
        for index, detection in enumerate(detections):
            track = track_of_detection.get(index)
            if track is None:
                track = _Track(self._next_id, _box_of(detection), stamp)
                self._next_id += 1
                # A new face where a visitor was last seen, who could not be this one
                # (moved, resized or changed colours too much for the time): that visitor
                # has left; a greeting robot learns it now, not leave_timeout later.
                for old in self._tracks:
                    if old.confirmed and old not in matched_tracks and old not in replaced \
                            and _iou(old.box, track.box) >= self.config.iou_threshold:
                        replaced.add(old)
                        events.append(old.event(VISITOR_LEFT))
                self._tracks.append(track)
                matched_tracks.add(track)
            else:
                self._move(track, detection, stamp)
            if appearances[index] is not None:
                histogram = np.asarray(appearances[index], np.float32)
                track.histogram = histogram if track.histogram is None else (
                    track.histogram + _APPEARANCE_GAIN * (histogram - track.histogram))
            was_confirmed = track.confirmed
            previous_label = track.label
            self._smooth_label(track, detection, stamp)
            if not track.confirmed and track.hits >= self.config.min_hits:
                track.confirmed = True
                events.append(track.event(VISITOR_APPEARED))
            elif was_confirmed and track.label != previous_label:
                events.append(track.event(MASK_STATE_CHANGED))
            output.append(replace(detection, track_id=track.track_id, label=track.label,
                                  confidence=track.confidence()))

        alive = []
        for track in self._tracks:
            if track in replaced:
                continue
            if track not in matched_tracks and not track.confirmed:
                track.missed_frames += 1
                if track.missed_frames > self.config.max_missed_frames:
                    continue
            alive.append(track)
        self._tracks = alive
        return TrackingResult(output, events)

    def _expire(self, stamp, events):
        """End the confirmed tracks unseen for longer than leave_timeout (before matching)."""
        alive = []
        for track in self._tracks:
            if track.confirmed and stamp - track.last_seen > self.config.leave_timeout:
                events.append(track.event(VISITOR_LEFT))
            else:
                alive.append(track)
        self._tracks = alive

    def _associate(self, detections, stamp, appearances):
        """Return [(detection index, track)] pairs of the best assignment."""
        if not detections or not self._tracks:
            return []
        cost = np.full((len(detections), len(self._tracks)), _NO_MATCH)
        det_boxes = [_box_of(detection) for detection in detections]
        for column, track in enumerate(self._tracks):
            predicted = self._predict(track, stamp)
            elapsed = max(stamp - track.last_seen, 0.0)
            for row, box in enumerate(det_boxes):
                cost[row, column] = self._pair_cost(track, predicted, box, elapsed,
                                                    appearances[row])
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

    def _pair_cost(self, track, predicted, box, elapsed, histogram):
        """1 - IoU for overlapping pairs, 1 + relative distance for the fallback, or none.

        ``elapsed``: seconds since the track was last seen; what a face may do in that time
        (move, grow or shrink, change colours) gates the pair.
        """
        config = self.config
        size_track = _size(track.box)
        size_box = _size(box)
        allowed_size = math.log(config.size_tolerance) + math.log(config.max_size_change) * elapsed
        if abs(math.log(size_box / size_track)) > allowed_size + 1e-9:
            return _NO_MATCH
        if histogram is not None and track.histogram is not None \
                and elapsed > config.appearance_gap and histogram_distance(
                    histogram, track.histogram) > config.max_appearance_distance:
            return _NO_MATCH
        overlap = _iou(predicted, box)
        if overlap >= config.iou_threshold:
            return 1.0 - overlap
        allowed = config.position_tolerance + config.max_speed * elapsed
        if allowed <= 0.0:
            return _NO_MATCH
        distance = math.hypot(predicted[0] + predicted[2] / 2.0 - box[0] - box[2] / 2.0,
                              predicted[1] + predicted[3] / 2.0 - box[1] - box[3] / 2.0)
        distance /= (size_track + size_box) / 2.0
        if distance > allowed:
            return _NO_MATCH
        return 1.0 + distance / allowed

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

    def _smooth_label(self, track, detection, stamp):
        track.raw_confidence = float(detection.confidence)
        if detection.label == UNKNOWN:
            return
        probability = float(detection.mask_probability)
        if not math.isfinite(probability):
            return
        remaining = 0.0 if track.mask_probability is None else math.exp(
            -max(stamp - track.label_stamp, 0.0) / self.config.label_time_constant)
        if remaining < _FORGOTTEN:
            # A fresh state (a new track, or old evidence too old to count): this frame
            # decides alone, with the pipeline's own label, not held by the hysteresis.
            track.mask_probability = probability
            track.label = detection.label
        else:
            track.mask_probability += (1.0 - remaining) * (
                probability - track.mask_probability)
        track.label_stamp = stamp
        if track.mask_probability >= self.config.smoothed_mask_threshold:
            track.label = MASK
        elif track.mask_probability <= self.config.smoothed_no_mask_threshold:
            track.label = NO_MASK


def face_histogram(image, detection):
    """Return the normalised hue-saturation histogram of a detection's face box (BGR image).

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
    histogram = cv2.calcHist([hsv], [0, 1], None, list(_HISTOGRAM_BINS),
                             [0, 180, 0, 256]).reshape(bins)
    total = float(histogram.sum())
    return histogram / total if total > 0 else histogram


def histogram_distance(a, b):
    """Hellinger distance of two normalised histograms: 0 = same colours, 1 = disjoint."""
    overlap = float(np.sum(np.sqrt(np.asarray(a, np.float64) * np.asarray(b, np.float64))))
    return math.sqrt(max(0.0, 1.0 - overlap))


def _size(box):
    return math.sqrt(max(box[2], 1.0) * max(box[3], 1.0))


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
