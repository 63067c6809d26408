"""Measure face detectors: recall per face-size bucket on a VOC set, and ms per frame.

    scripts/in_env.sh python -m benchmarks.detector_benchmark \
        --detector centerface --scales 0.5 0.6 0.75 --thresholds 0.35 0.5
    taskset -c 0,1 python -m benchmarks.detector_benchmark --no-dataset --threads 2 ...
    scripts/in_env.sh python -m benchmarks.detector_benchmark --no-dataset --size 240x240 \
        --scales 0.5 1.0

Recall: a ground-truth face counts as found when a detection overlaps it at IoU >= 0.3 (each
detection matches at most one face).  Buckets by the box's short side: <24, 24-48, >=48 px.
Precision: matched / all detections, and among detections >= 24 px (many small "false"
detections are unlabelled real faces).  Timing: median and minimum ms per frame of --size
(default 640x480; the astronaut photo, resized), detectors timed in interleaved rounds after a
warm-up.  A frame smaller than CenterFace's floor (min_input_side 320) is searched twice at
scale 0.5: at the floor's size and at half size (``coarse_size``); scale 1.0 on a 240x240
frame is that finer pass alone.
"""
import argparse
import itertools
from pathlib import Path
import sys
import time
import xml.etree.ElementTree as ElementTree

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'mask_detection'))

from benchmarks.common import parse_size  # noqa: E402,I100
from mask_detection.faces import create_face_detector  # noqa: E402

DEFAULT_DATA = ROOT.parent / 'shared' / 'data' / 'facemask-detection-dev'
BUCKETS = ((0, 24, '<24'), (24, 48, '24-48'), (48, 1 << 30, '>=48'))


def read_voc(xml_path: Path):
    """Return [(class name, x1, y1, x2, y2)] of a VOC file, clipped to the image."""
    root = ElementTree.parse(xml_path).getroot()
    width = int(root.find('size/width').text)
    height = int(root.find('size/height').text)
    boxes = []
    for obj in root.iter('object'):
        box = obj.find('bndbox')
        x1, y1, x2, y2 = (float(box.find(k).text) for k in ('xmin', 'ymin', 'xmax', 'ymax'))
        boxes.append((obj.find('name').text, max(0.0, x1), max(0.0, y1),
                      min(float(width), x2), min(float(height), y2)))
    return boxes


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the IoU of every box in a (N, 4 corners) with every box in b (M, 4 corners)."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def match(truth: np.ndarray, found: np.ndarray, min_iou: float) -> np.ndarray:
    """Greedy one-to-one matching by IoU; return a bool per ground-truth box."""
    hit = np.zeros(len(truth), bool)
    if len(truth) == 0 or len(found) == 0:
        return hit
    ious = iou_matrix(truth, found)
    while True:
        t, f = np.unravel_index(np.argmax(ious), ious.shape)
        if ious[t, f] < min_iou:
            return hit
        hit[t] = True
        ious[t, :] = -1
        ious[:, f] = -1


def evaluate(detector, data: Path, min_iou: float = 0.3, limit: int = 0):
    """Return (recall {class: {bucket: [found, total]}}, precision, precision >= 24, ms)."""
    table = {}
    detections = matched = 0
    big_detections = big_matched = 0  # detections with a short side >= 24 px
    elapsed = 0.0
    xml_paths = sorted((data / 'annotations').glob('*.xml'))
    if limit:
        xml_paths = xml_paths[:limit]
    for xml_path in xml_paths:
        image = cv2.imread(str(data / 'images' / (xml_path.stem + '.jpg')))
        truth = read_voc(xml_path)
        start = time.perf_counter()
        faces = detector.detect(image)
        elapsed += time.perf_counter() - start
        corners = np.array([t[1:] for t in truth], float).reshape(-1, 4)
        found = np.array([(f.x, f.y, f.x + f.width, f.y + f.height) for f in faces],
                         float).reshape(-1, 4)
        hit = match(corners, found, min_iou)
        detections += len(faces)
        matched += int(hit.sum())
        big = found[np.minimum(found[:, 2] - found[:, 0], found[:, 3] - found[:, 1]) >= 24]
        big_detections += len(big)
        big_matched += int(match(big, corners, min_iou).sum())
        for (name, x1, y1, x2, y2), ok in zip(truth, hit):
            side = min(x2 - x1, y2 - y1)
            bucket = next(label for low, high, label in BUCKETS if low <= side < high)
            for key in (name, 'all'):
                cell = table.setdefault(key, {}).setdefault(bucket, [0, 0])
                cell[0] += int(ok)
                cell[1] += 1
    count = len(xml_paths)
    return (table, matched / max(detections, 1), big_matched / max(big_detections, 1),
            elapsed / max(count, 1) * 1000)


def test_frame(path=None, size=(640, 480)) -> np.ndarray:
    """Return the timing frame: an image file, or the astronaut photo, resized to `size`."""
    if path:
        image = cv2.imread(str(path))
        if image is None:
            raise SystemExit(f'cannot read the image {path}')
    else:
        import skimage.data
        image = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    return cv2.resize(image, size)


def frame_times(detectors: dict, frame: np.ndarray, repeats: int) -> dict:
    """Return {name: (median, min) ms per frame}, timing the detectors in interleaved rounds.

    Interleaving spreads load from other processes over all detectors alike; the minimum is
    the least disturbed run, the median the typical one.
    """
    times = {name: [] for name in detectors}
    for detector in detectors.values():
        for _ in range(3):
            detector.detect(frame)
    for _ in range(repeats):
        for name, detector in detectors.items():
            start = time.perf_counter()
            detector.detect(frame)
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: (float(np.median(t)), float(np.min(t))) for name, t in times.items()}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--detector', default='centerface', choices=('haar', 'centerface'))
    parser.add_argument('--data', type=Path, default=DEFAULT_DATA)
    parser.add_argument('--scales', type=float, nargs='+', default=[0.5])
    parser.add_argument('--thresholds', type=float, nargs='+', default=[0.35],
                        help='CenterFace score thresholds (ignored for haar)')
    parser.add_argument('--engines', nargs='+', default=['auto'],
                        choices=('auto', 'onnxruntime', 'opencv'),
                        help='CenterFace inference engines (ignored for haar)')
    parser.add_argument('--ort-threads', type=int, default=0,
                        help='ONNX Runtime threads (0 = all cores)')
    parser.add_argument('--refine', type=float, nargs='+', default=[0.0],
                        help='CenterFace refine_threshold values (0 = no closer look)')
    parser.add_argument('--min-neighbors', type=int, default=5, help='haar only')
    parser.add_argument('--min-size', type=int, default=24, help='haar only, px')
    parser.add_argument('--repeats', type=int, default=50, help='timed frames per detector')
    parser.add_argument('--frame', type=Path, help='image to time on (default: astronaut)')
    parser.add_argument('--size', type=parse_size, default=(640, 480),
                        help='timed frame size WxH (default 640x480)')
    parser.add_argument('--threads', type=int, default=0,
                        help="cv2.setNumThreads (0 = leave OpenCV's default)")
    parser.add_argument('--no-dataset', action='store_true',
                        help='only time frames (no recall on --data)')
    args = parser.parse_args(argv)
    if not args.no_dataset and not (args.data / 'annotations').is_dir():
        parser.error(f'no VOC data set at {args.data} (pass --data or --no-dataset)')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        cv2.setNumThreads(args.threads)
    detectors = {}
    thresholds = args.thresholds if args.detector == 'centerface' else [None]
    engines = args.engines if args.detector == 'centerface' else [None]
    refines = args.refine if args.detector == 'centerface' else [0.0]
    for scale, threshold, engine, refine in itertools.product(args.scales, thresholds, engines,
                                                              refines):
        if args.detector == 'haar':
            settings = dict(scale=scale, min_neighbors=args.min_neighbors,
                            min_size=args.min_size)
            name = f'haar scale {scale} mn {args.min_neighbors} min {args.min_size}'
        else:
            settings = dict(scale=scale, score_threshold=threshold, engine=engine,
                            num_threads=args.ort_threads, refine_threshold=refine)
            name = f'centerface scale {scale} thr {threshold}'
            if refine:
                name += f' refine {refine}'
        detector = create_face_detector(args.detector, **settings)
        if engine is not None:
            name += f' {detector.engine}'
        detectors[name] = detector
    timings = frame_times(detectors, test_frame(args.frame, args.size), args.repeats)
    print(f'OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads')
    size = 'ms/{}x{} med/min'.format(*args.size)
    print(f'{"detector":<46} {size:>18} {"ms/img":>7} {"prec":>5} {"p>=24":>5}  '
          'recall all <24 / 24-48 / >=48  (with_mask; without_mask)')
    for name, detector in detectors.items():
        ms = '{:6.1f} / {:6.1f}'.format(*timings[name])
        if args.no_dataset:
            print(f'{name:<46} {ms:>18}', flush=True)
            continue
        table, precision, big_precision, ms_img = evaluate(detector, args.data)

        def row(key):
            cells = table.get(key, {})
            return ' / '.join(
                f'{100 * cells[b][0] / cells[b][1]:.0f}' if b in cells else '-'
                for _, _, b in BUCKETS)
        print(f'{name:<46} {ms:>18} {ms_img:7.1f} {precision:5.2f} {big_precision:5.2f}  '
              f'{row("all")}  ({row("with_mask")}; {row("without_mask")})', flush=True)


if __name__ == '__main__':
    main()
