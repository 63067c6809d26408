"""Evaluate the mask classifier alone (classify) or the whole pipeline on VOC scenes (detect).

    scripts/in_env.sh python -m training.evaluate classify --data DIR [--model FILE] \
        [--no-detect] [--no-align] --json OUT
    scripts/in_env.sh python -m training.evaluate detect --voc DIR [--face-detector NAME] \
        [--model FILE] --json OUT [--png CHART]
    scripts/in_env.sh python -m training.evaluate heldout --split training/heldout_split.json \
        [--data-root ../shared/data] [--model FILE] [--no-align] --json OUT \
        [--reliability-png FILE]

classify: accuracy, per-class precision/recall and the confusion matrix on an ImageFolder set
(with_mask/, without_mask/); by default each image's largest detected face is classified, the whole
image when no face is found (the JSON says how often), --no-detect classifies whole images.

detect: per face-size bucket (the box's short side: <24, 24-48, >=48 px, and all) and per class:
recall of faces (a detection matches a box at IoU >= 0.3, greedy, each used once), label accuracy
on the found faces (mask_weared_incorrect counts as no mask; UNKNOWN counts as wrong), precision
(unmatched detections fall in the bucket of their own short side), and frames per second.
``--images training/heldout_split.json`` selects the held-out images of that folder.

heldout: the classifier on the held-out faces of every data set of the split, broken down per data
set, face size, VOC class, face brightness, estimated mask colour and webcam condition, with masks
drawn on held-out unmasked faces reported apart (training/breakdown.py).
"""
import argparse
import dataclasses
import json
import os
from pathlib import Path
import sys
import time

import numpy as np

from mask_detection import classifier
from mask_detection.classifier import MASK, MaskClassifier, NO_MASK
from training import breakdown, heldout
from training import data as data_lib
from training.metrics import classification_metrics, plot_buckets, plot_confusion

UNKNOWN = 2
IOU_THRESHOLD = 0.3
BUCKETS = (('<24', 0, 24), ('24-48', 24, 48), ('>=48', 48, float('inf')))
LABEL_NAMES = {MASK: 'mask', NO_MASK: 'no_mask', UNKNOWN: 'unknown'}


def _face_detector(name, scale=None):
    from mask_detection.faces import create_face_detector
    settings = {} if scale is None else {'scale': scale}
    return create_face_detector(name, **settings)


def _detector_label(name):
    try:
        from mask_detection.faces import resolve_detector_name
        return resolve_detector_name(name)
    except ImportError:
        return name


# ---- classify --------------------------------------------------------------------------------

def _selected(paths, images):
    if images is None:
        return paths
    wanted = {str(Path(i).resolve()) for i in images}
    return [p for p in paths if str(p.resolve()) in wanted]


def evaluate_classify(data_dir, model_path=None, detect=True, face_detector='auto',
                      max_images=0, progress=True, images=None, align_faces=True):
    """Classify every image of an ImageFolder set; return the metrics dict.

    ``align_faces``: the found face is cropped upright by its landmarks, as in the pipeline.
    """
    data_dir = Path(data_dir)
    if data_lib.detect_layout(data_dir) != 'imagefolder':
        raise data_lib.DataError(f'{data_dir} is not an ImageFolder (with_mask/, without_mask/)')
    model = MaskClassifier(model_path, align_faces=align_faces)
    detector = _face_detector(face_detector) if detect else None
    labels, predictions, probabilities = [], [], []
    fallback = {'mask': 0, 'no_mask': 0}
    detected = {'mask': 0, 'no_mask': 0}
    # What a robot sees: a frame whose face was not found gets no label at all.
    found_and_right = {'mask': 0, 'no_mask': 0}
    started = time.perf_counter()
    for class_name, label in data_lib.FOLDER_CLASSES.items():
        paths = _selected(data_lib.list_images(data_dir / class_name), images)
        if max_images:
            paths = paths[:max_images]
        for path in data_lib._progress(paths, class_name, enabled=progress):
            image = data_lib.read_image(path)
            box = None
            if detector is not None:
                faces = detector.detect(image)
                largest = data_lib.largest_face([(f.x, f.y, f.width, f.height) for f in faces])
                # The FaceBox itself, so that its landmarks reach the classifier.
                box = None if largest is None else next(
                    f for f in faces if (f.x, f.y, f.width, f.height) == largest)
            key = 'mask' if label == MASK else 'no_mask'
            fallback_used = box is None
            if fallback_used:
                box = (0, 0, image.shape[1], image.shape[0])
                fallback[key] += detector is not None
            else:
                detected[key] += 1
            probability = model.predict(image, [box])[0]
            found_and_right[key] += bool(
                detector is not None and not fallback_used and np.argmax(probability) == label)
            labels.append(label)
            predictions.append(int(np.argmax(probability)))
            probabilities.append(float(probability[MASK]))
    if not labels:
        raise data_lib.DataError(f'no (selected) images in {data_dir}/with_mask or '
                                 'without_mask')
    result = classification_metrics(labels, predictions)
    result.update({
        'mode': 'largest detected face, whole image when none found' if detect
        else 'whole image (no face detection)',
        'face_detector': _detector_label(face_detector) if detect else None,
        'faces_detected': detected if detect else None,
        'whole_image_fallback': fallback if detect else None,
        'found_and_labelled_right': found_and_right if detect else None,
        'data': str(data_dir), 'model': str(model.model_path), 'align_faces': align_faces,
        'seconds': time.perf_counter() - started})
    return result


# ---- detect ----------------------------------------------------------------------------------

def iou(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    width = min(ax + aw, bx + bw) - max(ax, bx)
    height = min(ay + ah, by + bh) - max(ay, by)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / float(aw * ah + bw * bh - inter)


def greedy_match(truth_boxes, detected_boxes, threshold=IOU_THRESHOLD):
    """Return {truth index: detection index}: best IoU pairs first, each box used once."""
    pairs = []
    for t, truth in enumerate(truth_boxes):
        for d, detected in enumerate(detected_boxes):
            overlap = iou(truth, detected)
            if overlap >= threshold:
                pairs.append((overlap, t, d))
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    matches, used = {}, set()
    for _, t, d in pairs:
        if t not in matches and d not in used:
            matches[t] = d
            used.add(d)
    return matches


def bucket_of(box):
    short = min(box[2], box[3])
    for name, low, high in BUCKETS:
        if low <= short < high:
            return name
    return BUCKETS[-1][0]


class DirectPipeline:
    """Face detector + classifier, used when mask_detection.pipeline is not available."""

    name = 'faces + classifier (direct)'

    def __init__(self, face_detector, model_path, device='cpu', num_threads=0):
        self.detector = _face_detector(face_detector)
        self.classifier = MaskClassifier(model_path, device, num_threads)

    def __call__(self, bgr):
        faces = self.detector.detect(bgr)
        if not faces:
            return []
        probabilities = self.classifier.predict(bgr, faces)
        return [((f.x, f.y, f.width, f.height), int(np.argmax(p)))
                for f, p in zip(faces, probabilities)]


class ProductPipeline:
    """mask_detection.pipeline.MaskDetectionPipeline with its default settings."""

    name = 'mask_detection.pipeline.MaskDetectionPipeline'

    def __init__(self, face_detector, model_path, device='cpu', num_threads=0, settings=None):
        from mask_detection.pipeline import MaskDetectionPipeline, PipelineConfig
        fields = {f.name: f for f in dataclasses.fields(PipelineConfig)}
        unknown = sorted(set(settings or {}) - set(fields))
        if unknown:
            raise ValueError(f'unknown pipeline setting(s) {", ".join(unknown)}; known: '
                             f'{", ".join(sorted(fields))}')
        chosen = {'face_detector': face_detector, 'device': device,
                  'num_threads': num_threads, 'model_path': str(model_path or '')}
        chosen = {k: v for k, v in chosen.items() if k in fields}
        for key, text in (settings or {}).items():
            default = getattr(PipelineConfig, key, None)
            chosen[key] = _setting_value(key, text, default)
        self.config = PipelineConfig(**chosen)
        self.pipeline = MaskDetectionPipeline(self.config)

    def __call__(self, bgr):
        result = self.pipeline.process(bgr)
        return [((d.x, d.y, d.width, d.height), int(d.label)) for d in result.detections]


def _setting_value(key, text, default):
    """Convert --setting KEY=TEXT to the type of the field's default; errors name the setting."""
    if default is None:
        return text
    if isinstance(default, bool):
        if text.lower() not in ('true', 'false', '1', '0'):
            raise ValueError(f'--setting {key}={text}: expected true or false')
        return text.lower() in ('true', '1')
    try:
        return type(default)(text)
    except ValueError:
        raise ValueError(f'--setting {key}={text}: expected a {type(default).__name__} '
                         f'(default {default!r})') from None


def make_pipeline(face_detector, model_path=None, device='cpu', num_threads=0,
                  use_product=True, settings=None):
    if use_product:
        try:
            import mask_detection.pipeline  # noqa: F401
        except ImportError:
            pass
        else:
            return ProductPipeline(face_detector, model_path, device, num_threads, settings)
    if settings:
        raise ValueError('pipeline settings need mask_detection.pipeline (not with --direct)')
    return DirectPipeline(face_detector, model_path, device, num_threads)


def _empty_counts():
    return {'n_faces': 0, 'found': 0, 'label_correct': 0, 'unknown': 0,
            'detections': 0, 'true_positives': 0}


def _ratio(numerator, denominator):
    return float(numerator / denominator) if denominator else None


def _finish(counts):
    return {'recall': _ratio(counts['found'], counts['n_faces']),
            'label_accuracy': _ratio(counts['label_correct'], counts['found']),
            'precision': _ratio(counts['true_positives'], counts['detections']),
            'n_faces': counts['n_faces'], 'found': counts['found'],
            'label_correct': counts['label_correct'], 'unknown_labels': counts['unknown'],
            'detections': counts['detections']}


def evaluate_detect(voc_dir, face_detector='auto', model_path=None, images=None, max_images=0,
                    device='cpu', num_threads=0, use_product=True, progress=True,
                    settings=None):
    """Run the pipeline on every image of a VOC folder; return the result dict."""
    voc_images = data_lib.read_voc_folder(voc_dir)
    if images is not None:
        wanted = {Path(i).name for i in images} | {Path(i).stem for i in images}
        voc_images = [v for v in voc_images
                      if v.image_path.name in wanted or v.image_path.stem in wanted]
    if max_images:
        voc_images = voc_images[:max_images]
    if not voc_images:
        raise data_lib.DataError(f'no annotated image selected in {voc_dir}')
    pipeline = make_pipeline(face_detector, model_path, device, num_threads, use_product,
                             settings)
    pipeline(np.zeros((64, 64, 3), np.uint8))   # warm-up: networks created outside the timing
    classes = sorted({o.name for v in voc_images for o in v.objects})
    names = [b[0] for b in BUCKETS] + ['all']
    counts = {n: _empty_counts() for n in names}
    per_class = {n: {c: _empty_counts() for c in classes} for n in names}
    seconds = 0.0
    for voc in data_lib._progress(voc_images, 'images', enabled=progress):
        image = data_lib.read_image(voc.image_path)
        start = time.perf_counter()
        detections = pipeline(image)
        seconds += time.perf_counter() - start
        truth = [o for o in voc.objects]
        matches = greedy_match([o.box for o in truth], [d[0] for d in detections])
        matched_detections = {}
        for t, obj in enumerate(truth):
            bucket = bucket_of(obj.box)
            expected = MASK if obj.name == 'with_mask' else NO_MASK
            for target in (counts[bucket], counts['all'], per_class[bucket][obj.name],
                           per_class['all'][obj.name]):
                target['n_faces'] += 1
                if t in matches:
                    label = detections[matches[t]][1]
                    target['found'] += 1
                    target['label_correct'] += label == expected
                    target['unknown'] += label == UNKNOWN
            if t in matches:
                matched_detections[matches[t]] = bucket
        for d, (box, _) in enumerate(detections):
            bucket = matched_detections.get(d, bucket_of(box))
            for target in (counts[bucket], counts['all']):
                target['detections'] += 1
                target['true_positives'] += d in matched_detections
    buckets = {}
    for name in names:
        buckets[name] = _finish(counts[name])
        buckets[name]['classes'] = {c: _finish(per_class[name][c]) for c in classes
                                    if per_class[name][c]['n_faces']}
        for entry in buckets[name]['classes'].values():
            del entry['precision'], entry['detections']
    model = getattr(pipeline, 'classifier', None)
    config = getattr(pipeline, 'config', None)
    return {'fps': len(voc_images) / seconds if seconds else None,
            'pipeline_config': dataclasses.asdict(config) if config is not None else None,
            'buckets': buckets,
            'n_images': len(voc_images), 'ms_per_frame': 1000.0 * seconds / len(voc_images),
            'face_detector': _detector_label(face_detector), 'pipeline': pipeline.name,
            'model': str(model.model_path) if model is not None else str(
                model_path or classifier.default_model_path()),
            'iou_threshold': IOU_THRESHOLD, 'voc': str(voc_dir),
            'notes': 'recall: found faces / annotated faces; label_accuracy: correct labels '
                     '/ found faces (mask_weared_incorrect = no mask, unknown = wrong); '
                     'precision: matched detections / detections, unmatched ones bucketed by '
                     'their own short side; fps includes detection and classification only'}


def _fmt(value):
    return '   -  ' if value is None else f'{value * 100:5.1f}%'


def print_detect_table(result, stream=sys.stdout):
    print(f'{result["voc"]}: {result["n_images"]} images, face detector '
          f'{result["face_detector"]}, {result["fps"]:.1f} fps '
          f'({result["ms_per_frame"]:.1f} ms/frame)', file=stream)
    print(f'{"bucket":<8}{"class":<22}{"faces":>6}{"recall":>8}{"label ok":>10}'
          f'{"precision":>11}', file=stream)
    for name, bucket in result['buckets'].items():
        print(f'{name:<8}{"(all classes)":<22}{bucket["n_faces"]:>6}{_fmt(bucket["recall"]):>8}'
              f'{_fmt(bucket["label_accuracy"]):>10}{_fmt(bucket["precision"]):>11}',
              file=stream)
        for class_name, entry in bucket['classes'].items():
            print(f'{"":<8}{class_name:<22}{entry["n_faces"]:>6}{_fmt(entry["recall"]):>8}'
                  f'{_fmt(entry["label_accuracy"]):>10}', file=stream)


def print_classify_summary(result, stream=sys.stdout):
    print(f'{result["data"]}: accuracy {result["accuracy"]:.4f} on {result["n"]} images '
          f'({result["mode"]})', file=stream)
    for name, entry in result['per_class'].items():
        print(f'  {name:<8} precision {_fmt(entry["precision"])} recall '
              f'{_fmt(entry["recall"])} n={entry["n"]}', file=stream)
    if result['whole_image_fallback'] is not None:
        print(f'  no face found, whole image used: {result["whole_image_fallback"]}',
              file=stream)
        right = result['found_and_labelled_right']
        print("  face found and labelled right (a robot's view: no face, no label): "
              f'{sum(right.values())} of {result["n"]} {right}', file=stream)
    print(f'  confusion (rows truth, cols predicted mask/no_mask): '
          f'{result["confusion_matrix"]["matrix"]}', file=stream)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    classify = commands.add_parser('classify', help='classifier accuracy on an ImageFolder set')
    classify.add_argument('--data', required=True, metavar='DIR')
    classify.add_argument('--model', metavar='FILE', help='default: the shipped model')
    classify.add_argument('--no-detect', action='store_true',
                          help='classify whole images instead of the largest detected face')
    classify.add_argument('--face-detector', default='auto')
    classify.add_argument('--no-align', action='store_true',
                          help='crop the found face as found, not upright by its landmarks')
    classify.add_argument('--max-images', type=int, default=0, help='per class; 0 = all')
    classify.add_argument('--images', metavar='FILE',
                          help='only these image paths (same formats as detect --images)')
    classify.add_argument('--json', required=True, metavar='OUT')
    classify.add_argument('--png', metavar='FILE', help='confusion matrix chart')
    detect = commands.add_parser('detect', help='the whole pipeline on a VOC folder')
    detect.add_argument('--voc', required=True, metavar='DIR')
    detect.add_argument('--face-detector', default='auto')
    detect.add_argument('--model', metavar='FILE', help='default: the shipped model')
    detect.add_argument('--images', metavar='FILE',
                        help='only these images: a JSON list, or a JSON object with a '
                             '"val_images" list (split.json of training), or one name per line')
    detect.add_argument('--max-images', type=int, default=0)
    detect.add_argument('--device', default='cpu')
    detect.add_argument('--threads', type=int, default=0)
    detect.add_argument('--setting', action='append', default=[], metavar='KEY=VALUE',
                        help='a PipelineConfig field, e.g. min_face_size=16; repeatable')
    detect.add_argument('--direct', action='store_true',
                        help='faces + classifier directly, not MaskDetectionPipeline')
    detect.add_argument('--json', required=True, metavar='OUT')
    detect.add_argument('--png', metavar='FILE', help='bucket chart (default: OUT with .png)')
    held = commands.add_parser('heldout', help='the breakdown on the held-out split')
    held.add_argument('--split', default=str(heldout.DEFAULT_SPLIT), metavar='FILE',
                      help='held-out split (default %(default)s)')
    held.add_argument('--data-root', default=str(heldout.default_data_root()), metavar='DIR',
                      help='folder holding the data sets (default %(default)s)')
    held.add_argument('--model', action='append', metavar='FILE',
                      help='model file (default: the shipped model); repeat to compare '
                           'models on the same faces and conditions')
    held.add_argument('--no-align', action='store_true',
                      help='crop rolled faces as annotated, not upright (the pipeline turns '
                           'them upright by their landmarks)')
    held.add_argument('--no-synthetic', action='store_true',
                      help='skip the masks drawn on held-out unmasked faces')
    held.add_argument('--reliability-png', metavar='FILE',
                      help='reliability diagram of the held-out real faces')
    held.add_argument('--cache-dir', default=str(data_lib.DEFAULT_CACHE_DIR),
                      help='face detector results cache (default %(default)s)')
    held.add_argument('--json', required=True, metavar='OUT')
    for sub in (classify, detect, held):
        sub.add_argument('--no-progress', action='store_true')
    return parser.parse_args(argv)


def _key_value(text):
    key, separator, value = text.partition('=')
    if not separator or not key.strip():
        raise SystemExit(f'error: --setting expects KEY=VALUE, got {text!r}')
    return key.strip(), value.strip()


def read_image_list(path, folder=None):
    """Image paths from a JSON list, a split.json, the held-out split (for ``folder``), or text."""
    text = Path(path).read_text()
    try:
        loaded = json.loads(text)
    except ValueError:
        return [line.strip() for line in text.splitlines() if line.strip()]
    if isinstance(loaded, dict) and 'sets' in loaded:
        name = heldout.set_name(folder, loaded) if folder else None
        if name is None:
            raise data_lib.DataError(f'{folder} is not one of the data sets of {path}')
        files = loaded['sets'][name]['files']
        if files == 'all':
            return None
        return [str(Path(folder) / f) for f in files]
    if isinstance(loaded, dict):
        loaded = loaded.get('val_images', [])
    return [str(item) for item in loaded]


def main(argv=None):
    args = parse_args(argv)
    progress = not args.no_progress
    out = Path(args.json)
    # Before the run, which can take many minutes: a result that cannot be written is lost.
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f'error: --json {out}: cannot create its folder ({error.strerror})', file=sys.stderr)
        return 2
    if not os.access(out.parent, os.W_OK) or out.is_dir():
        print(f'error: --json {out}: not a writable file path', file=sys.stderr)
        return 2
    try:
        if args.command == 'heldout':
            results = breakdown.evaluate_heldout(
                args.split, args.data_root, args.model or [None], not args.no_synthetic,
                progress=progress, reliability_png=args.reliability_png,
                cache_dir=args.cache_dir, align_faces=not args.no_align)
            for entry in results:
                breakdown.print_breakdown(entry)
            result = results[0] if len(results) == 1 else {'models': results}
        elif args.command == 'classify':
            images = read_image_list(args.images, args.data) if args.images else None
            result = evaluate_classify(args.data, args.model, not args.no_detect,
                                       args.face_detector, args.max_images, progress, images,
                                       not args.no_align)
            print_classify_summary(result)
            if args.png:
                plot_confusion(result, args.png, Path(args.data).name)
        else:
            images = read_image_list(args.images, args.voc) if args.images else None
            settings = dict(_key_value(item) for item in args.setting)
            result = evaluate_detect(args.voc, args.face_detector, args.model, images,
                                     args.max_images, args.device, args.threads,
                                     not args.direct, progress, settings)
            print_detect_table(result)
            png = Path(args.png) if args.png else Path(args.json).with_suffix('.png')
            plot_buckets(result, png, f'{Path(args.voc).name}: {result["face_detector"]}, '
                                      f'{result["fps"]:.1f} fps')
            print(f'chart: {png}')
    except (data_lib.DataError, classifier.ModelFileError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    out.write_text(json.dumps(result, indent=1))
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
