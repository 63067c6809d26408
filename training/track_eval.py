"""Measure the tracker on moving-camera clips made from real photos, at several processing rates.

    scripts/in_env.sh python -m training.track_eval --split training/heldout_split.json \
        [--voc DIR] [--clips 18] [--frames 90] [--fps 30] [--rates 30,15,5] [--model PATH] \
        [--setting KEY=VALUE] [--sweep] [--json results.json] [--cache clips.json]

``--split`` (the held-out split) keeps to photos the classifier never saw; without
it any dev-set photo may be used, which flatters the classifier when it was trained on them.

Each clip is a virtual camera moving over one photo of the detection dev set (pan, zoom in and
out, or a fast sweep that throws faces out of the frame and back), rendered at 640x480 with
camera shake and sensor noise, so its faces move with known boxes and labels (VOC
``with_mask`` = MASK, ``without_mask`` = NO_MASK; ``mask_weared_incorrect`` counts for identity
and flips only). Without the data set the clips pan/zoom over ``skimage.data.astronaut()``.
The clips are a camera at ``--fps``; processing at a rate R takes every (fps / R)-th frame, as
detector_node does with ``max_rate_hz`` (stamps stay the camera's).

Every frame goes through the real pipeline (face detector + classifier, once; the detections
and each face box's colour histogram are cached) and then through `MaskTracker`
configurations. Per ground-truth face:
- flips/min: changes of the displayed label between MASK and NO_MASK (UNKNOWN frames skipped),
  per minute of detected face time; "raw" is the per-frame label, no tracking or smoothing;
- acc: share of detected frames (faces with a known label) whose label is right, and decided:
  share whose label is not UNKNOWN;
- id sw: changes of the track id on a face between frames where it is detected at most
  2 s apart (a face that was out of view longer may come back as a new visitor);
- appeared/face: VISITOR_APPEARED events of tracks on real faces per face; false appeared:
  those of tracks that never covered a real face (detector false positives);
- missed: faces detected in >= 10 frames whose track never announced itself;
- react: seconds (median; and the share within 0.3 s) from the last frame before a real
  change of mask state to the first frame whose label follows it (spliced from the
  classifier's outputs on a masked and an unmasked face, on a fixed box);
- gaps: one visitor, then after a gap with no frames another one (or the same one again) at
  the same place, spliced the same way: the share of new visitors whose first frame shows
  their own label, and the shares that got a new / kept the same track id.
"""
import argparse
from dataclasses import asdict, dataclass, field, fields, replace
import json
import math
import os
from pathlib import Path
import random
import sys
import time

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'mask_detection'))

from mask_detection.pipeline import (  # noqa: E402
    Detection, MASK, MaskDetectionPipeline, NO_MASK, PipelineConfig, UNKNOWN)
from mask_detection.tracking import (  # noqa: E402
    face_histogram, MASK_STATE_CHANGED, MaskTracker, TrackerConfig, VISITOR_APPEARED)
from training.data import read_voc_folder, voc_label  # noqa: E402

SHARED_DATA = Path(os.environ.get('MASK_DETECTION_SHARED_DATA', ROOT.parent / 'shared' / 'data'))
DEFAULT_VOC = SHARED_DATA / 'facemask-detection-dev'
FRAME_SIZE = (640, 480)
CLIP_KINDS = ('pan', 'zoom', 'sweep')
MATCH_IOU = 0.3
# A face is scored in a frame when this much of its box is inside the frame.
MIN_VISIBLE = 0.75
# The astronaut's face in skimage.data.astronaut() (512x512), (x1, y1, x2, y2), no mask: the
# CenterFace box on the still photo, checked by eye.
ASTRONAUT_FACE = (180, 56, 272, 178)
NAME_WIDTH = 52
# A face seen again within this many seconds should keep its track id; after a longer gap
# (it left the frame) a new id is no identity switch.
REID_GAP = 2.0
# Detections before and after a spliced mask-state change (see reaction()).
REACTION_FRAMES = 30
# The issue-15 target: a label follows a real change within this many seconds.
REACTION_TARGET_S = 0.3
# Gaps (s) between two visitors at the same place (see gaps()).
GAPS_S = (0.25, 0.5, 1.0)
# Decimals kept of the cached histograms (JSON size).
HISTOGRAM_DECIMALS = 5


@dataclass
class Face:
    identity: int
    label: object  # MASK, NO_MASK or None (worn incorrectly: identity and flips only)
    box: tuple  # (x1, y1, x2, y2) in photo pixels


@dataclass
class Clip:
    name: str
    kind: str
    faces: list
    truth: list = field(default_factory=list)  # per frame: [(identity, label, box, scored)]
    detections: list = field(default_factory=list)  # per frame: the pipeline's detections
    appearances: list = field(default_factory=list)  # per frame: face_histogram per detection


def write_clip_cache(path, pipeline_text, clips):
    """Write the clips and their detections as JSON (plain data: safe to read back)."""
    def plain(clip):
        data = asdict(clip)
        data['appearances'] = [[[round(float(v), HISTOGRAM_DECIMALS) for v in histogram]
                                for histogram in frame] for frame in clip.appearances]
        return data

    def scalar(value):  # numpy scalars in the ground truth (np.bool_, np.float64)
        if isinstance(value, np.generic):
            return value.item()
        raise TypeError(f'{type(value).__name__} is not JSON serialisable')

    Path(path).write_text(json.dumps({'pipeline': pipeline_text,
                                      'clips': [plain(clip) for clip in clips]},
                                     default=scalar))


def read_clip_cache(path):
    """Return (pipeline_text, clips) from a file written by write_clip_cache."""
    data = json.loads(Path(path).read_text())
    if any('appearances' not in clip for clip in data['clips']):
        raise SystemExit(f'{path}: no face histograms (an older cache): delete it to rebuild')

    def as_truth(entry):
        identity, label, box, scored = entry
        return identity, label, tuple(box), scored

    clips = [Clip(name=c['name'], kind=c['kind'],
                  faces=[Face(f['identity'], f['label'], tuple(f['box'])) for f in c['faces']],
                  truth=[[as_truth(entry) for entry in frame] for frame in c['truth']],
                  detections=[[Detection(**d) for d in frame] for frame in c['detections']],
                  appearances=c['appearances'])
             for c in data['clips']]
    return data['pipeline'], clips


def load_photos(voc_dir, count, rng, only=None):
    """Pick `count` photos with at least one face of >= 20 px, as (name, bgr, faces).

    ``only``: a set of image file names; other photos are not used.
    """
    if voc_dir is None:
        from skimage import data
        bgr = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
        return [('astronaut', bgr, [Face(0, NO_MASK, ASTRONAUT_FACE)])] * count
    candidates = []
    for image in read_voc_folder(voc_dir):
        faces = [Face(identity, voc_label(obj.name, incorrect_as='skip'),
                      (obj.box[0], obj.box[1], obj.box[0] + obj.box[2], obj.box[1] + obj.box[3]))
                 for identity, obj in enumerate(image.objects)]
        if only is not None and image.image_path.name not in only:
            continue
        if any(min(obj.box[2], obj.box[3]) >= 20 for obj in image.objects):
            candidates.append((image.image_path, faces))
    if not candidates:
        raise SystemExit(f'no usable photo in {voc_dir}')
    rng.shuffle(candidates)
    photos = []
    for image_path, faces in candidates[:count]:
        bgr = cv2.imread(str(image_path))
        if bgr is None:
            raise SystemExit(f'cannot read {image_path}')
        photos.append((image_path.stem, bgr, faces))
    return photos


def camera_path(kind, photo_size, faces, frames, rng):
    """Return per frame (centre x, centre y, scale) of a virtual camera over the photo."""
    photo_w, photo_h = photo_size
    out_w, out_h = FRAME_SIZE
    # Smallest scale at which the window still fits inside the photo.
    fit = max(out_w / photo_w, out_h / photo_h)
    sizes = sorted(min(f.box[2] - f.box[0], f.box[3] - f.box[1]) for f in faces)
    biggest = max(sizes[-1], 1.0)
    # Zoom so that the biggest face is 50-110 px on its short side, never below `fit`.
    zoom = max(fit, rng.uniform(50.0, 110.0) / biggest)
    zoom = min(zoom, max(fit, 6.0))
    targets = [((f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2) for f in faces]
    steps = np.linspace(0.0, 1.0, frames)
    if kind == 'pan':
        start, end = rng.choice(targets), rng.choice(targets)
        start = (start[0] - rng.uniform(0.2, 0.4) * out_w / zoom, start[1])
        end = (end[0] + rng.uniform(0.2, 0.4) * out_w / zoom, end[1])
        xs = start[0] + (end[0] - start[0]) * steps
        ys = start[1] + (end[1] - start[1]) * steps
        scales = np.full(frames, zoom)
    elif kind == 'zoom':
        centre = rng.choice(targets)
        xs = np.full(frames, centre[0])
        ys = np.full(frames, centre[1])
        low = max(fit, zoom * 0.5)
        scales = low + (zoom - low) * 0.5 * (1 - np.cos(2 * np.pi * steps * rng.uniform(1, 2)))
    elif kind == 'sweep':
        centre = rng.choice(targets)
        periods = rng.uniform(1.0, 2.5)
        # Peak speed of the faces in the frame: 0.3 to 1.2 face sizes per frame (at 1.2 the
        # boxes of consecutive frames no longer overlap).
        peak = rng.uniform(0.3, 1.2) * sizes[len(sizes) // 2] * zoom
        amplitude = min(peak / (2 * np.pi * periods / frames), 0.9 * out_w) / zoom
        xs = centre[0] + amplitude * np.sin(2 * np.pi * periods * steps)
        ys = np.full(frames, centre[1]) + rng.uniform(-0.1, 0.1) * out_h / zoom
        scales = np.full(frames, zoom)
    else:
        raise ValueError(f'unknown clip kind {kind!r}')
    shake = np.array([rng.gauss(0.0, 1.5) for _ in range(2 * frames)]).reshape(frames, 2)
    path = []
    for x, y, scale, (dx, dy) in zip(xs, ys, scales, shake):
        half_w, half_h = out_w / scale / 2, out_h / scale / 2
        # Keep the window inside the photo (the fit scale guarantees that it can be).
        x = min(max(x, half_w), photo_w - half_w) + dx / scale
        y = min(max(y, half_h), photo_h - half_h) + dy / scale
        path.append((x, y, scale))
    return path


def render_clip(name, kind, bgr, faces, frames, rng):
    """Render a clip; return the Clip with per-frame ground truth and the frames."""
    clip = Clip(name, kind, faces)
    out_w, out_h = FRAME_SIZE
    noise_rng = np.random.default_rng(rng.randrange(1 << 30))
    images = []
    for centre_x, centre_y, scale in camera_path(kind, bgr.shape[1::-1], faces, frames, rng):
        offset_x = out_w / 2 - centre_x * scale
        offset_y = out_h / 2 - centre_y * scale
        matrix = np.array([[scale, 0.0, offset_x], [0.0, scale, offset_y]])
        frame = cv2.warpAffine(bgr, matrix, FRAME_SIZE, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        noise = noise_rng.normal(0.0, 3.0, frame.shape)
        images.append(np.clip(frame + noise, 0, 255).astype(np.uint8))
        truth = []
        for face in faces:
            x1, y1, x2, y2 = (face.box[0] * scale + offset_x, face.box[1] * scale + offset_y,
                              face.box[2] * scale + offset_x, face.box[3] * scale + offset_y)
            area = max((x2 - x1) * (y2 - y1), 1e-9)
            inside = (max(0.0, min(x2, out_w) - max(x1, 0.0))
                      * max(0.0, min(y2, out_h) - max(y1, 0.0)))
            if inside <= 0.0:
                continue
            scored = inside / area >= MIN_VISIBLE and min(x2 - x1, y2 - y1) >= 10
            truth.append((face.identity, face.label, (x1, y1, x2, y2), scored))
        clip.truth.append(truth)
    return clip, images


def match_truth(truth, detections):
    """Match ground-truth faces to detections (IoU >= 0.3, greedy best first)."""
    pairs = []
    for t_index, (_, _, (x1, y1, x2, y2), _) in enumerate(truth):
        for d_index, det in enumerate(detections):
            width = min(x2, det.x + det.width) - max(x1, det.x)
            height = min(y2, det.y + det.height) - max(y1, det.y)
            if width <= 0 or height <= 0:
                continue
            inter = width * height
            union = (x2 - x1) * (y2 - y1) + det.width * det.height - inter
            if inter / union >= MATCH_IOU:
                pairs.append((inter / union, t_index, d_index))
    pairs.sort(reverse=True)
    used_truth, used_det, matches = set(), set(), {}
    for _, t_index, d_index in pairs:
        if t_index not in used_truth and d_index not in used_det:
            used_truth.add(t_index)
            used_det.add(d_index)
            matches[t_index] = d_index
    return matches


def count_flips(labels):
    """Count MASK <-> NO_MASK changes in a label sequence, skipping UNKNOWN."""
    flips, last = 0, None
    for label in labels:
        if label == UNKNOWN:
            continue
        if last is not None and label != last:
            flips += 1
        last = label
    return flips


def evaluate(clips, fps, config, stride=1):
    """Score one tracker configuration (None: raw per-frame labels) on the cached clips.

    ``fps``: the clips' camera rate; every ``stride``-th frame is processed (rate fps/stride).
    """
    totals = dict(face_frames=0, flips=0, labelled=0, correct=0, decided=0, id_switches=0,
                  faces=0, appeared_true=0, appeared_false=0, missed=0, changes=0)
    for clip in clips:
        tracker = MaskTracker(config) if config is not None else None
        per_face = {}  # identity -> list of (label, track id) in frames where it is detected
        covered = set()  # track ids that covered a real face at least once
        appeared = set()
        for index in range(0, len(clip.truth), stride):
            truth, detections = clip.truth[index], clip.detections[index]
            if tracker is not None:
                appearances = clip.appearances[index] if clip.appearances else None
                result = tracker.update(detections, index / fps, appearances)
                detections = result.detections
                for event in result.events:
                    if event.event == VISITOR_APPEARED:
                        appeared.add(event.track_id)
                    elif event.event == MASK_STATE_CHANGED:
                        totals['changes'] += 1
            for t_index, d_index in match_truth(truth, detections).items():
                identity, label, _, scored = truth[t_index]
                det = detections[d_index]
                covered.add(det.track_id)
                if not scored:
                    continue
                per_face.setdefault(identity, []).append((det.label, det.track_id, index))
                totals['face_frames'] += 1
                if det.label != UNKNOWN:
                    totals['decided'] += 1
                if label is not None:
                    totals['labelled'] += 1
                    totals['correct'] += int(det.label == label)
        for history in per_face.values():
            totals['faces'] += 1
            totals['flips'] += count_flips([label for label, _, _ in history])
            ids = [track_id for _, track_id, _ in history]
            totals['id_switches'] += sum(
                a[1] != b[1] and (b[2] - a[2]) / fps <= REID_GAP
                for a, b in zip(history, history[1:]))
            if tracker is not None and len(history) >= 10 and not appeared & set(ids):
                totals['missed'] += 1
        totals['appeared_true'] += len(appeared & covered)
        totals['appeared_false'] += len(appeared - covered)
    # Each processed frame stands for `stride` camera frames of face time.
    minutes = totals['face_frames'] * stride / fps / 60.0
    return dict(
        totals,
        flips_per_min=totals['flips'] / minutes if minutes else math.nan,
        changes_per_min=totals['changes'] / minutes if minutes else math.nan,
        accuracy=totals['correct'] / totals['labelled'] if totals['labelled'] else math.nan,
        decided=totals['decided'] / totals['face_frames'] if totals['face_frames'] else math.nan,
        appeared_per_face=totals['appeared_true'] / totals['faces'] if totals['faces'] else 0,
        face_minutes=minutes)


def label_sequences(clips, length):
    """Return {MASK: [...], NO_MASK: [...]}: per face, its first `length` (detection, histogram).

    Each entry is a list; faces of different photos or identities are different people.
    """
    sequences = {MASK: [], NO_MASK: []}
    for clip in clips:
        per_face = {}
        for truth, detections, appearances in zip(clip.truth, clip.detections,
                                                  clip.appearances):
            for t_index, d_index in match_truth(truth, detections).items():
                identity, label, _, scored = truth[t_index]
                if scored and label is not None:
                    per_face.setdefault((identity, label), []).append(
                        (detections[d_index], appearances[d_index]))
        for (_, label), history in per_face.items():
            if len(history) >= length:
                sequences[label].append(history[:length])
    return sequences


def _play(tracker, entries, rate, start=0.0):
    """Feed (detection, histogram) entries on a fixed box at `rate` from stamp `start`."""
    shown = []
    for index, (det, histogram) in enumerate(entries):
        det = replace(det, x=100, y=100, width=64, height=64)
        if tracker is not None:
            det = tracker.update([det], start + index / rate, [histogram]).detections[0]
        shown.append(det)
    return shown


def reaction(sequences, rate, config, length, pairs=200):
    """Seconds the label takes to follow a real mask-state change at a processing `rate`.

    A change is spliced from real classifier outputs: the detections of one face with a mask
    followed by those of one without (and the reverse), on a fixed box so that only the
    labelling is measured.  Counted when the label before the change was right; the delay runs
    from the last frame before the change to the first frame showing the new label (at 5 Hz
    the next frame is 0.2 s); a label that has not followed within `length` frames counts as
    not followed.
    """
    rng = random.Random(0)
    delays, missed = [], 0
    for before, after in ((MASK, NO_MASK), (NO_MASK, MASK)):
        combos = [(a, b) for a in sequences[before] for b in sequences[after]]
        for first, second in rng.sample(combos, min(pairs, len(combos))):
            tracker = MaskTracker(config) if config is not None else None
            labels = [det.label for det in _play(tracker, first + second, rate)]
            if labels[length - 1] != before:
                continue
            delay = next((index + 1 for index, label in enumerate(labels[length:])
                          if label == after), None)
            if delay is None:
                missed += 1
            else:
                delays.append(delay / rate)
    total = len(delays) + missed
    within = sum(delay <= REACTION_TARGET_S + 1e-9 for delay in delays)
    return dict(reaction_s=float(np.median(delays)) if delays else math.nan,
                reaction_p90_s=float(np.percentile(delays, 90)) if delays else math.nan,
                within_target=within / total if total else math.nan,
                followed=len(delays) / total if total else math.nan, changes_tested=total)


def gaps(sequences, rate, config, length, gap, pairs=200):
    """Two visitors at the same place `gap` s apart, and one visitor seen again after `gap`.

    Spliced like reaction(): visitor A's first `length` frames, no frame for `gap` s, then
    visitor B's (a masked and an unmasked person, both ways).  Returns the share of Bs whose
    first frame shows B's own label (of those whose raw first frame is right) and the share
    that got a new track id; for one visitor cut in two by the same gap: the share that kept
    its track id.
    """
    rng = random.Random(1)
    right = judged = new_ids = swaps = kept = repeats = 0
    if config is None:
        return dict(gap_s=gap, own_label=math.nan, new_id=math.nan, same_id=math.nan)
    for before, after in ((MASK, NO_MASK), (NO_MASK, MASK)):
        combos = [(a, b) for a in sequences[before] for b in sequences[after]]
        for first, second in rng.sample(combos, min(pairs, len(combos))):
            tracker = MaskTracker(config)
            old = _play(tracker, first[:length], rate)
            start = (length - 1) / rate + gap
            new = _play(tracker, second[:length], rate, start)
            swaps += 1
            new_ids += new[0].track_id != old[-1].track_id
            if second[0][0].label == after:
                judged += 1
                right += new[0].label == after
    for label in (MASK, NO_MASK):
        for sequence in rng.sample(sequences[label], min(pairs, len(sequences[label]))):
            tracker = MaskTracker(config)
            half = length // 2
            old = _play(tracker, sequence[:half], rate)
            new = _play(tracker, sequence[half:length], rate, (half - 1) / rate + gap)
            repeats += 1
            kept += new[0].track_id == old[-1].track_id
    return dict(gap_s=gap, own_label=right / judged if judged else math.nan,
                new_id=new_ids / swaps if swaps else math.nan,
                same_id=kept / repeats if repeats else math.nan, swaps=swaps,
                repeats=repeats)


def configurations(sweep):
    """Return [(name, TrackerConfig or None)]: raw, the defaults, and one-knob variants."""
    default = TrackerConfig()
    names = {spec.name for spec in fields(TrackerConfig)}
    rows = [('raw per-frame labels (no tracker)', None), ('default', default)]
    variants = [('label_time_constant', (0.1, 0.3)), ('max_appearance_distance', (0.0,)),
                ('min_hits', (1, 5)), ('max_speed', (0.0,))]
    if sweep:
        variants += [('label_time_constant', (0.15, 0.25)),
                     ('max_appearance_distance', (0.3, 0.4, 0.5, 0.6, 0.7)),
                     ('max_speed', (5.0, 10.0, 20.0)), ('position_tolerance', (0.25, 1.0)),
                     ('size_tolerance', (1.2, 1.5, 2.0)), ('max_size_change', (1.5, 4.0)),
                     ('iou_threshold', (0.1, 0.5)), ('leave_timeout', (1.0, 4.0)),
                     ('max_prediction_time', (0.0, 1.0)), ('max_missed_frames', (2, 8)),
                     ('smoothed_mask_threshold', (0.65,))]
    for name, values in variants:
        if name not in names:  # an older TrackerConfig (running this on an earlier commit)
            continue
        for value in values:
            if value != getattr(default, name):
                rows.append((f'{name}={value}', replace(default, **{name: value})))
    if sweep and {'smoothed_mask_threshold', 'smoothed_no_mask_threshold'} <= names:
        # The hysteresis band moves both thresholds at once (0.7 / 0.3: the band before #15).
        for high, low in ((0.7, 0.3), (0.55, 0.45)):
            config = replace(default, smoothed_mask_threshold=high, smoothed_no_mask_threshold=low)
            if config != default:
                rows.append((f'hysteresis {high}/{low}', config))
    return rows


def format_table(rows):
    """Markdown table of (name, metrics) rows; metrics from evaluate() + reaction()."""
    header = (f'| {"tracker":<{NAME_WIDTH}} | rate | flips/min | acc | decided | react s '
              '(<=0.3 s) | id sw | appeared/face | false appeared | missed | changes/min |')
    lines = [header, '|' + '---|' * 11]
    for name, metrics in rows:
        raw = name.startswith('raw')
        lines.append(
            f'| {name:<{NAME_WIDTH}} | {metrics["rate"]:4g} | {metrics["flips_per_min"]:9.2f} | '
            f'{metrics["accuracy"]:.3f} | {metrics["decided"]:7.3f} | '
            f'{metrics["reaction_s"]:.2f} ({100 * metrics["within_target"]:3.0f}%) | '
            + (' - ' if raw else f'{metrics["id_switches"]:5d}') + ' | '
            + ('-' if raw else f'{metrics["appeared_per_face"]:13.2f}') + ' | '
            + ('-' if raw else f'{metrics["appeared_false"]:14d}') + ' | '
            + ('-' if raw else f'{metrics["missed"]:6d}') + ' | '
            + ('-' if raw else f'{metrics["changes_per_min"]:11.2f}') + ' |')
    return '\n'.join(lines)


def format_gaps(rows):
    """Markdown table of (name, rate, gaps() results)."""
    lines = ['| tracker | rate | gap s | new visitor: own label at 1st frame | new visitor: '
             'new id | same visitor: same id |', '|' + '---|' * 6]
    for name, rate, result in rows:
        lines.append(f'| {name} | {rate:g} | {result["gap_s"]:g} | '
                     f'{100 * result["own_label"]:.0f}% | {100 * result["new_id"]:.0f}% | '
                     f'{100 * result["same_id"]:.0f}% |')
    return '\n'.join(lines)


def build_pipeline(args):
    config = PipelineConfig()
    overrides = {}
    names = {spec.name for spec in fields(config)}
    if args.model is not None:
        overrides['model_path'] = str(args.model)
    if args.detector is not None:
        overrides['face_detector'] = args.detector
    unknown = {item.partition('=')[0] for item in args.setting} - names
    if unknown:
        raise SystemExit(f'--setting: PipelineConfig has no field(s) {sorted(unknown)}')
    from training.evaluate import _setting_value
    for item in args.setting:
        key, _, text = item.partition('=')
        try:
            overrides[key] = _setting_value(key, text, getattr(config, key))
        except ValueError as error:
            raise SystemExit(str(error)) from None
    unknown = set(overrides) - names
    if unknown:
        raise SystemExit(f'PipelineConfig has no field(s) {sorted(unknown)}')
    config = replace(config, **overrides)
    return config, MaskDetectionPipeline(config)


def parse_args(argv=None):
    """Parse and check the command line; ``rate_list`` holds the rates of --rates."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--voc', type=Path, default=DEFAULT_VOC,
                        help='VOC detection set (images/, annotations/); the astronaut photo '
                             'is used when it does not exist (default: %(default)s)')
    parser.add_argument('--clips', type=int, default=18, help='clips (one photo each)')
    parser.add_argument('--frames', type=int, default=90, help='frames per clip')
    parser.add_argument('--fps', type=float, default=30.0,
                        help='camera frame rate of the clips (default %(default)s)')
    parser.add_argument('--rates', default='30,15,5',
                        help='processing rates in Hz, comma separated; each divides --fps '
                             '(default %(default)s)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--model', type=Path, default=None,
                        help='classifier model file (default: the pipeline default)')
    parser.add_argument('--detector', default=None, help='face detector (default: pipeline)')
    parser.add_argument('--setting', action='append', default=[], metavar='KEY=VALUE',
                        help='a PipelineConfig field, e.g. align_faces=false; repeatable')
    parser.add_argument('--split', type=Path, default=None,
                        help="training/heldout_split.json (or a training run's split.json): "
                             'use only the held-out photos, which the classifier never saw')
    parser.add_argument('--sweep', action='store_true', help='also try more tracker settings')
    parser.add_argument('--json', type=Path, default=None, help='write the results here')
    parser.add_argument('--cache', type=Path, default=None,
                        help='JSON file of the clips and their detections: written after '
                             'the pipeline ran, read instead of running it when it exists')
    args = parser.parse_args(argv)
    if args.clips < 1 or args.frames < 2 or not args.fps > 0:
        parser.error('--clips must be >= 1, --frames >= 2 and --fps > 0')
    try:
        rates = [float(rate) for rate in args.rates.split(',')]
    except ValueError:
        parser.error(f'--rates: numbers separated by commas, got {args.rates!r}')
    strides = {rate: round(args.fps / rate) if rate > 0 else 0 for rate in rates}
    if any(stride < 1 or abs(args.fps / stride - rate) > 1e-6
           for rate, stride in strides.items()):
        parser.error(f'every rate of --rates must divide --fps ({args.fps:g}): {args.rates}')
    if args.split is not None:
        # Checked now, not after the pipeline has been built and the clips rendered.
        try:
            json.loads(args.split.read_text())
        except OSError as error:
            parser.error(f'--split {args.split}: {error.strerror}')
        except ValueError as error:
            parser.error(f'--split {args.split}: not a JSON split file ({error})')
    args.rate_list = rates
    return args


def main(argv=None):
    args = parse_args(argv)
    rates = args.rate_list
    strides = {rate: round(args.fps / rate) if rate > 0 else 0 for rate in rates}
    rng = random.Random(args.seed)
    voc = args.voc if args.voc.is_dir() else None
    if voc is None:
        print(f'{args.voc} not found: using skimage.data.astronaut()', file=sys.stderr)
    if args.cache is not None and args.cache.exists():
        pipeline_text, clips = read_clip_cache(args.cache)
        print(f'{len(clips)} clips read from {args.cache}')
    else:
        pipeline_config, pipeline = build_pipeline(args)
        pipeline_text = str(pipeline_config)
        only = None
        if args.split is not None:
            from training.evaluate import read_image_list
            listed = read_image_list(args.split, voc)
            only = None if listed is None else {Path(path).name for path in listed}
        photos = load_photos(voc, args.clips, rng, only)
        clips, started, frames = [], time.perf_counter(), 0
        for index, (name, bgr, faces) in enumerate(photos):
            kind = CLIP_KINDS[index % len(CLIP_KINDS)]
            clip, images = render_clip(name, kind, bgr, faces, args.frames, rng)
            clip.detections = [pipeline.process(image).detections for image in images]
            clip.appearances = [[face_histogram(image, det) for det in detections]
                                for image, detections in zip(images, clip.detections)]
            frames += len(images)
            clips.append(clip)
        seconds = time.perf_counter() - started
        print(f'{len(clips)} clips x {args.frames} frames from {voc or "astronaut"}; pipeline '
              f'{1000 * seconds / frames:.0f} ms/frame (render included; shared machine: '
              'noisy)')
        if args.cache is not None:
            write_clip_cache(args.cache, pipeline_text, clips)
    print(f'pipeline: {pipeline_text}')

    sequences = label_sequences(clips, REACTION_FRAMES)
    rows = []
    for name, config in configurations(args.sweep):
        for rate in rates if name in ('default', 'raw per-frame labels (no tracker)') \
                else [15.0 if 15.0 in rates else rates[0]]:
            rows.append((name, dict(evaluate(clips, args.fps, config, strides[rate]),
                                    **reaction(sequences, rate, config, REACTION_FRAMES),
                                    rate=rate)))
    gap_rows = [('default', rate, gaps(sequences, rate, TrackerConfig(), REACTION_FRAMES, gap))
                for rate in rates for gap in GAPS_S]
    default = next(metrics for name, metrics in rows if name == 'default')
    print(f'\n{default["faces"]} faces, {default["face_minutes"]:.1f} face-minutes detected '
          f'(camera {args.fps:g} fps, processed at {args.rates} Hz); defaults: '
          f'{TrackerConfig()}\n')
    print(format_table(rows))
    print(f'\n{len(sequences[MASK])} masked and {len(sequences[NO_MASK])} unmasked face '
          'sequences spliced for react and gaps\n')
    print(format_gaps(gap_rows))
    if args.json is not None:
        args.json.write_text(json.dumps({
            'settings': {key: str(value) for key, value in vars(args).items()
                         if key != 'rate_list'},
            'pipeline': pipeline_text,
            'defaults': asdict(TrackerConfig()),
            'rows': [{'tracker': name, **metrics} for name, metrics in rows],
            'gaps': [{'tracker': name, 'rate': rate, **result}
                     for name, rate, result in gap_rows]}, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
