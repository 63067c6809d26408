"""Benchmarks of mask_detection: scripts that print numbers (never timed tests).

    scripts/in_env.sh python -m benchmarks.benchmark pipeline [--images DIR] [--size 640x480]
    scripts/in_env.sh python -m benchmarks.benchmark ros [--rates 30 60] [--duration 20]
    scripts/in_env.sh python -m benchmarks.benchmark soak [--duration 600]

``pipeline`` times, in one process and one run, (a) the naive original design (Haar on the
full-resolution grey frame with the tutorial settings 1.1 / 5 / 30x30, one classifier forward per
face, drawing every frame), (b) the project's default configuration and (c) each face detector,
with one thread and with all threads, over real frames (the detection dev set resized to the
frame size, else scikit-image's photos).  Configurations run in interleaved rounds so that load
from other processes hits them alike.  ``ros`` and ``soak`` start real node processes (see
``benchmarks/graph_benchmark.py``).
"""
import argparse
import array
import dataclasses
from dataclasses import dataclass, field
import json
from pathlib import Path
import statistics
import sys
import time
import types
import warnings

import cv2
import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT / 'mask_detection') not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / 'mask_detection'))

from mask_detection import classifier as classifier_module  # noqa: E402
from mask_detection.faces import create_face_detector  # noqa: E402
from mask_detection.pipeline import DEFAULT_FRAMES_IN_FLIGHT  # noqa: E402

from benchmarks.common import (  # noqa: E402,I100 - the graph benchmark shares these
    image_folder, load_average, load_frames, parse_size, resolve_model_path, usable_cores)

STAGES = ('convert', 'detect', 'classify', 'draw')
# The row of detector_node's default worker design (DEFAULT_FRAMES_IN_FLIGHT frames at once).
IN_FLIGHT_ROW = '(b) default, {} in flight'
# The original tutorial's Haar settings (the naive baseline).
NAIVE_HAAR = {'scaleFactor': 1.1, 'minNeighbors': 5, 'minSize': (30, 30)}
COLOURS = {0: (0, 200, 0), 1: (0, 0, 255), 2: (0, 220, 220)}


# ---------------------------------------------------------------------------------------------
# Frames

def frame_message(frame):
    """Return a sensor_msgs/Image (or an object with its fields) holding ``frame`` as bgr8.

    The data is an ``array.array('B')``, what rclpy hands a subscriber callback.
    """
    data = array.array('B')
    data.frombytes(np.ascontiguousarray(frame).tobytes())
    fields = {'height': frame.shape[0], 'width': frame.shape[1], 'encoding': 'bgr8',
              'is_bigendian': 0, 'step': frame.shape[1] * 3}
    try:
        from sensor_msgs.msg import Image
    except ImportError:
        return types.SimpleNamespace(data=data, header=None, **fields)
    msg = Image(**fields)
    msg.data = data
    return msg


# ---------------------------------------------------------------------------------------------
# The systems under test: each has name, process_message(msg) -> (faces, {stage: ms})

def _ms(start_ns):
    return (time.perf_counter_ns() - start_ns) * 1e-6


class NaiveSystem:
    """The original design, as the tutorial wrote it.

    Copy the image, Haar 1.1 / 5 / 30x30 on the full-resolution grey frame, one classifier
    forward per face, draw every frame (on a copy, then into an outgoing image message).
    """

    name = '(a) naive'
    engine = 'opencv+torch'

    def __init__(self, model_path):
        path = Path(cv2.data.haarcascades) / 'haarcascade_frontalface_default.xml'
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise RuntimeError(f'cannot load {path}')
        self.model, metadata = classifier_module.load_model_file(model_path)
        self.preprocessing = classifier_module.preprocessing_settings(metadata)

    def process_message(self, msg):
        times = {}
        start = time.perf_counter_ns()
        # cv_bridge-style conversion: a new array that owns a copy of the data.
        frame = np.array(msg.data, dtype=np.uint8).reshape(msg.height, msg.width, 3)
        times['convert'] = _ms(start)

        start = time.perf_counter_ns()
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        rects = self.cascade.detectMultiScale(grey, **NAIVE_HAAR)
        times['detect'] = _ms(start)

        start = time.perf_counter_ns()
        results = []
        for (x, y, w, h) in rects:
            face = classifier_module.preprocess_face(frame, (x, y, w, h), **self.preprocessing)
            with torch.no_grad():
                probabilities = torch.softmax(self.model(torch.from_numpy(face[None])), dim=1)
            results.append(((int(x), int(y), int(w), int(h)), probabilities[0].numpy()))
        times['classify'] = _ms(start)

        start = time.perf_counter_ns()
        annotated = frame.copy()
        for (x, y, w, h), probabilities in results:
            label = int(np.argmax(probabilities))
            colour = COLOURS[label]
            cv2.rectangle(annotated, (x, y), (x + w, y + h), colour, 2)
            cv2.putText(annotated, f'{("mask", "no mask")[label]} {probabilities.max():.2f}',
                        (x, max(0, y - 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 2)
        frame_message(annotated)  # the outgoing image message, as cv_bridge builds it
        times['draw'] = _ms(start)
        return len(results), times


def _image_reader():
    """Return the node's msg -> BGR ndarray conversion (image_codec), or a zero-copy stand-in."""
    try:
        from mask_detection.image_codec import image_msg_to_bgr
        return image_msg_to_bgr, 'image_codec.image_msg_to_bgr'
    except ImportError:
        def read(msg):
            return np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
        return read, 'np.frombuffer view (image_codec.py not available)'


def _annotator():
    """Return f(frame, detections, header), what the node does for an annotated_image reader.

    A copy of the frame (the message's buffer is read-only), draw_detections, and the outgoing
    message (image_codec.array_to_image_msg).
    """
    from mask_detection.drawing import draw_detections
    from mask_detection.image_codec import array_to_image_msg

    try:
        from sensor_msgs.msg import Image  # noqa: F401
        with_ros = True
    except ImportError:
        with_ros = False

    def annotate(frame, detections, header):
        annotated = draw_detections(frame.copy(), detections)
        # Without ROS, a plain object with the message's fields receives the image.
        msg = None if with_ros else types.SimpleNamespace(header=header)
        return array_to_image_msg(annotated, 'bgr8', msg=msg, header=header)
    return annotate


class PipelineSystem:
    """The project's pipeline (MaskDetectionPipeline) behind the project's image conversion."""

    def __init__(self, name, config, annotate=False):
        from mask_detection.pipeline import MaskDetectionPipeline
        self.name = name
        self.config = config
        self.pipeline = MaskDetectionPipeline(config)
        self.read_image, self.reader_name = _image_reader()
        self.annotate = _annotator() if annotate else None
        self.engine = engine_label(self.pipeline.face_detector, self.pipeline.classifier)

    def process_message(self, msg):
        times = {}
        start = time.perf_counter_ns()
        frame = self.read_image(msg)
        times['convert'] = _ms(start)
        start = time.perf_counter_ns()
        result = self.pipeline.process(frame)
        total = _ms(start)
        stage_times = split_pipeline_timings(result.timings, total)
        times.update(stage_times)
        if self.annotate is not None:
            start = time.perf_counter_ns()
            self.annotate(frame, result.detections, getattr(msg, 'header', None))
            times['draw'] = _ms(start)
        return len(result.detections), times


class InFlightSystem:
    """detector_node's worker design: ``count`` frames processed at the same time.

    Each worker has its own pipeline (like the node's), with ``threads`` detector and
    classifier threads; the workers take a round's frames in order from a shared queue.  Its
    fps is frames / wall time of the round (throughput); per-frame times are each frame's own
    processing time.  The node's in-order tracking and publishing are not part of it (the
    ``ros`` benchmark measures the node itself).
    """

    def __init__(self, name, config, count, threads=1):
        config = dataclasses.replace(config, detector_threads=threads, num_threads=threads)
        self.name = name
        self.workers = [PipelineSystem(f'{name} #{index}', config) for index in range(count)]
        self.engine = self.workers[0].engine

    def process_message(self, msg):
        return self.workers[0].process_message(msg)

    def process_round(self, messages):
        """Process ``messages`` with all workers; return ([(faces, times, ms)], wall ms)."""
        import queue
        import threading
        pending = queue.SimpleQueue()
        for index, msg in enumerate(messages):
            pending.put((index, msg))
        results = [None] * len(messages)

        def work(system):
            while True:
                try:
                    index, msg = pending.get_nowait()
                except queue.Empty:
                    return
                start = time.perf_counter_ns()
                faces, times = system.process_message(msg)
                results[index] = (faces, times, _ms(start))

        threads = [threading.Thread(target=work, args=(system,)) for system in self.workers]
        start = time.perf_counter_ns()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results, _ms(start)


def engine_label(face_detector, classifier):
    """Return 'DETECTOR ENGINE+CLASSIFIER ENGINE', e.g. 'onnxruntime+onnxruntime'."""
    return (f'{getattr(face_detector, "engine", "") or "?"}+'
            f'{getattr(classifier, "engine", "") or "torch"}')


def split_pipeline_timings(timings, total_ms):
    """Map a PipelineResult's timings onto detect / classify / other (ms).

    Keys containing 'detect' count as detect; 'classif', 'preprocess' or 'crop' as classify;
    the rest of the measured total (tracking, bookkeeping) as 'other'.
    """
    detect = sum(v for k, v in timings.items() if 'detect' in k and 'total' not in k)
    classify = sum(v for k, v in timings.items()
                   if any(s in k for s in ('classif', 'preprocess', 'crop')) and 'total' not in k)
    return {'detect': detect, 'classify': classify,
            'other': max(0.0, total_ms - detect - classify)}


class ComponentSystem:
    """A face detector + the batched MaskClassifier, used when pipeline.py is not available."""

    def __init__(self, name, detector_name, model_path, **settings):
        self.name = name
        self.detector = create_face_detector(detector_name, **settings)
        self.classifier = classifier_module.MaskClassifier(model_path)
        self.read_image, self.reader_name = _image_reader()
        self.engine = engine_label(self.detector, self.classifier)

    def process_message(self, msg):
        times = {}
        start = time.perf_counter_ns()
        frame = self.read_image(msg)
        times['convert'] = _ms(start)
        start = time.perf_counter_ns()
        boxes = self.detector.detect(frame)
        times['detect'] = _ms(start)
        start = time.perf_counter_ns()
        self.classifier.predict(frame, boxes)
        times['classify'] = _ms(start)
        return len(boxes), times


def build_systems(model_path, detectors=('haar', 'centerface'), annotate_row=True,
                  scales=(), engines=('opencv',), threads=None, variants=(), in_flight=0):
    """Return (systems, notes): naive, default, default + annotation, one per face detector.

    ``scales``: extra rows, each face detector at that detection_scale.  ``engines``: extra
    rows, the default configuration with each of these inference engines.  ``threads``:
    (detector, classifier) threads given to every configuration (ONNX Runtime sessions take
    their thread count when they are made; None = the configurations' own).  ``variants``:
    extra rows, the default configuration with these {field: value} changes.  ``in_flight``:
    with 2 or more, a row of that many frames in flight (detector_node's worker design), one
    thread each.
    """
    notes = []
    systems = [NaiveSystem(model_path)]
    try:
        from mask_detection.pipeline import PipelineConfig
    except ImportError as error:
        notes.append(f'pipeline.py not available ({error}): (b)/(c) are face detector + '
                     'batched MaskClassifier composed here')
        systems.append(ComponentSystem('(b) default', 'auto', model_path))
        for name in detectors:
            systems.append(ComponentSystem(f'(c) {name}', name, model_path))
        return systems, notes

    def configured(**fields):
        config = _with_model(PipelineConfig(**fields), model_path)
        if threads is not None and hasattr(config, 'detector_threads'):
            config = dataclasses.replace(config, detector_threads=threads[0],
                                         num_threads=threads[1])
        return config

    default = configured()
    systems.append(PipelineSystem('(b) default', default))
    if in_flight > 1:
        systems.append(InFlightSystem(IN_FLIGHT_ROW.format(in_flight), configured(), in_flight))
    if annotate_row:
        systems.append(PipelineSystem('(b) default+draw', default, annotate=True))
    for engine in engines:
        if engine != default.inference_engine:
            try:
                config = dataclasses.replace(default, inference_engine=engine)
                systems.append(PipelineSystem(f'(b) default/{engine}', config))
            except ValueError as error:
                notes.append(f'engine {engine} skipped: {error}')
    for variant in variants:
        label = ' '.join(f'{key}={value}' for key, value in variant.items())
        systems.append(PipelineSystem(f'(b) {label}', configured(**variant)))
    for name in detectors:
        systems.append(PipelineSystem(f'(c) {name}', configured(face_detector=name)))
        for scale in scales:
            systems.append(PipelineSystem(f'(c) {name}@{scale:g}', configured(
                face_detector=name, detection_scale=scale)))
    return systems, notes


def _with_model(config, model_path):
    shipped = classifier_module.default_model_path()
    if Path(model_path) != shipped and hasattr(config, 'model_path'):
        return dataclasses.replace(config, model_path=str(model_path))
    return config


# ---------------------------------------------------------------------------------------------
# Measurement

@dataclass
class Measurement:
    """Per-frame timings of one system under one thread setting."""

    name: str
    frame_ms: list = field(default_factory=list)
    cpu_ms: float = 0.0
    # Frames in flight: the rounds' wall time (fps = frames / wall time, not / summed frames).
    wall_ms: float = 0.0
    stage_ms: dict = field(default_factory=dict)
    faces: int = 0

    def add(self, faces, times, total_ms, cpu_ms=0.0):
        self.frame_ms.append(total_ms)
        self.cpu_ms += cpu_ms
        self.faces += faces
        for stage, value in times.items():
            self.stage_ms.setdefault(stage, []).append(value)

    def summary(self):
        frames = len(self.frame_ms)
        total = sum(self.frame_ms)
        elapsed = self.wall_ms or total
        row = {'frames': frames, 'fps': 1000.0 * frames / elapsed if elapsed else 0.0,
               'mean_ms': total / frames if frames else 0.0,
               'median_ms': statistics.median(self.frame_ms) if frames else 0.0,
               'p95_ms': float(np.percentile(self.frame_ms, 95)) if frames else 0.0,
               'cpu_ms': self.cpu_ms / frames if frames else 0.0,
               'faces_per_frame': self.faces / frames if frames else 0.0}
        for stage in STAGES + ('other',):
            values = self.stage_ms.get(stage, [])
            row[f'{stage}_ms'] = sum(values) / frames if frames else 0.0
        return row


def parse_threads(text):
    """Return a thread setting from '1', 'all' (or '0'), or 'CV,TORCH' such as 'all,1'.

    The setting is (label, OpenCV threads, torch threads), 0 meaning all cores.
    """
    parts = [p.strip().lower() for p in str(text).split(',')]
    try:
        counts = [0 if p in ('all', '0') else int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"threads must be 'N', 'all' or 'CV,TORCH' (e.g. 'all,1'), got {text!r}") from None
    if len(counts) not in (1, 2) or any(c < 0 for c in counts):
        raise argparse.ArgumentTypeError(f'bad thread setting {text!r}')
    cv_threads, torch_threads = counts * 2 if len(counts) == 1 else counts
    if cv_threads == torch_threads:
        label = 'all' if cv_threads == 0 else str(cv_threads)
    else:
        label = (f'cv2 {"all" if cv_threads == 0 else cv_threads}, '
                 f'torch {"all" if torch_threads == 0 else torch_threads}')
    return label, cv_threads, torch_threads


def set_threads(cv_threads, torch_threads):
    """Set OpenCV's and torch's intra-op thread counts (0 = all cores); return them."""
    cores = usable_cores()
    cv_threads, torch_threads = cv_threads or cores, torch_threads or cores
    cv2.setNumThreads(cv_threads)
    torch.set_num_threads(torch_threads)
    return cv_threads, torch_threads


def measure(systems, messages, rounds, warmup=3):
    """Run every system over every message, ``rounds`` times, interleaved; return Measurements."""
    for system in systems:
        for worker in getattr(system, 'workers', [system]):
            for msg in messages[:warmup]:
                worker.process_message(msg)
    results = {system.name: Measurement(system.name) for system in systems}
    for _ in range(rounds):
        for system in systems:
            measurement = results[system.name]
            if hasattr(system, 'process_round'):
                cpu_start = time.process_time_ns()
                frames, wall_ms = system.process_round(messages)
                cpu_ms = (time.process_time_ns() - cpu_start) * 1e-6
                for faces, times, frame_ms in frames:
                    measurement.add(faces, times, frame_ms, cpu_ms / len(frames))
                measurement.wall_ms += wall_ms
                continue
            for msg in messages:
                cpu_start = time.process_time_ns()
                start = time.perf_counter_ns()
                faces, times = system.process_message(msg)
                measurement.add(faces, times, _ms(start),
                                (time.process_time_ns() - cpu_start) * 1e-6)
    return results


def run_pipeline_benchmark(frames, rounds=3, threads=('1', 'all'), model_path=None,
                           detectors=('haar', 'centerface'), annotate_row=True, scales=(),
                           out=print, engines=('opencv',), variants=()):
    """Measure all systems with each thread setting; print tables; return the report dict."""
    model_path, model_note = resolve_model_path(model_path)
    messages = [frame_message(frame) for frame in frames]
    systems, notes = build_systems(model_path, detectors, annotate_row, scales, engines,
                                   variants=variants)
    if model_note:
        notes.append(model_note)
    reader = next((s.reader_name for s in systems if hasattr(s, 'reader_name')), '')
    default_threads = None
    if hasattr(systems[1], 'config') and hasattr(systems[1].config, 'detector_threads'):
        default_threads = (systems[1].config.detector_threads, systems[1].config.num_threads)
    # (threads given to the systems, or None for their own; frames in flight) they were built for
    built_for = (default_threads, 0)
    report = {'size': f'{frames[0].shape[1]}x{frames[0].shape[0]}', 'frames': len(frames),
              'rounds': rounds, 'cores': usable_cores(), 'model_path': str(model_path),
              'image_reader': reader, 'notes': notes, 'load_average_before': load_average(),
              'results': {}}
    for note in notes:
        out(f'note: {note}')
    for setting in threads:
        label, cv_threads, torch_threads = parse_threads(setting)
        used = set_threads(cv_threads, torch_threads)
        # detector_node's worker design spends all cores on frames in flight, one thread each.
        in_flight = (DEFAULT_FRAMES_IN_FLIGHT if (cv_threads, torch_threads) == (0, 0)
                     and usable_cores() >= DEFAULT_FRAMES_IN_FLIGHT > 1 else 0)
        wanted = ((cv_threads, torch_threads) if default_threads is not None else None,
                  in_flight)
        if wanted != built_for:
            # The detector's and classifier's ONNX Runtime sessions get these threads too
            # (they take them when they are made): systems built for another setting are not
            # reused.
            systems = build_systems(model_path, detectors, annotate_row, scales, engines,
                                    wanted[0], variants, in_flight)[0]
            built_for = wanted
        measurements = measure(systems, messages, rounds)
        rows = {name: m.summary() for name, m in measurements.items()}
        for system in systems:
            rows[system.name]['engine'] = getattr(system, 'engine', '')
        naive_fps = rows[systems[0].name]['fps']
        for row in rows.values():
            row['ratio'] = row['fps'] / naive_fps if naive_fps else 0.0
        report['results'][label] = {'cv2_threads': used[0], 'torch_threads': used[1],
                                    'systems': rows}
        out(format_table(rows, f'threads: {label} (cv2 {used[0]}, torch {used[1]})'))
    report['load_average_after'] = load_average()
    all_rows = report['results'].get('all', next(iter(report['results'].values())))['systems']
    report['naive_fps'] = all_rows['(a) naive']['fps']
    report['default_fps'] = all_rows['(b) default']['fps']
    report['ratio'] = all_rows['(b) default']['ratio']
    in_flight_row = IN_FLIGHT_ROW.format(DEFAULT_FRAMES_IN_FLIGHT)
    if in_flight_row in all_rows:
        report['frames_in_flight'] = DEFAULT_FRAMES_IN_FLIGHT
        report['in_flight_fps'] = all_rows[in_flight_row]['fps']
        report['in_flight_ratio'] = all_rows[in_flight_row]['ratio']
    one = report['results'].get('1')
    if one:
        report['naive_fps_1thread'] = one['systems']['(a) naive']['fps']
        report['default_fps_1thread'] = one['systems']['(b) default']['fps']
        report['ratio_1thread'] = one['systems']['(b) default']['ratio']
    # The default configuration's own choice: OpenCV on all cores, torch on 1 (num_threads=1).
    own = report['results'].get('cv2 all, torch 1')
    if own:
        report['default_fps_cv2_all_torch_1'] = own['systems']['(b) default']['fps']
        report['naive_fps_cv2_all_torch_1'] = own['systems']['(a) naive']['fps']
        report['ratio_cv2_all_torch_1'] = own['systems']['(b) default']['ratio']
    out(f'load average before {report["load_average_before"]}, '
        f'after {report["load_average_after"]} ({usable_cores()} cores)')
    return report


def format_table(rows, title):
    """Return the side-by-side table of one thread setting."""
    header = (f'{"config":<20} {"engine":<24} {"fps":>7} {"x naive":>7} {"ms/frame":>8} '
              f'{"p95 ms":>7} {"cpu ms":>7} {"convert":>7} {"detect":>7} {"classify":>8} '
              f'{"draw":>6} {"other":>6} {"faces":>6}')
    lines = [f'== {title}', header]
    for name, row in rows.items():
        lines.append(
            f'{name:<20} {row.get("engine", ""):<24} {row["fps"]:7.1f} {row["ratio"]:7.2f} '
            f'{row["mean_ms"]:8.2f} {row["p95_ms"]:7.2f} {row["cpu_ms"]:7.2f} '
            f'{row["convert_ms"]:7.2f} {row["detect_ms"]:7.2f} {row["classify_ms"]:8.2f} '
            f'{row["draw_ms"]:6.2f} {row["other_ms"]:6.2f} {row["faces_per_frame"]:6.2f}')
    lines.append('(engine = face detector engine + classifier engine; wall ms are means per '
                 'frame;\n cpu ms = CPU time of this process per frame, all its threads; draw = '
                 'copy + annotation +\n outgoing message; other = pipeline bookkeeping; faces = '
                 'faces classified per frame;\n x naive = fps / naive fps in this run)')
    return '\n'.join(lines)


# ---------------------------------------------------------------------------------------------
# Variants: classifier execution options, CenterFace input size vs dev-set recall

def classifier_variants(model):
    """Return {name: module} of execution variants of a MaskNet with the same weights."""
    def copy():
        clone = type(model)(model.input_size, model.conv_channels)
        clone.load_state_dict(model.state_dict())  # into contiguous (NCHW) parameters
        return clone.eval()
    variants = {'eager (NCHW)': copy()}
    variants['channels_last'] = copy().to(memory_format=torch.channels_last)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)  # torch.jit is deprecated
        variants['channels_last + jit.freeze'] = torch.jit.freeze(
            torch.jit.script(variants['channels_last']))
    return variants


class OnnxRuntimeVariant:
    """The classifier's ONNX Runtime session (what MaskClassifier runs), called like a module."""

    def __init__(self, model, threads):
        from mask_detection.engines import onnxruntime_session
        self.session = onnxruntime_session(classifier_module.export_onnx(model), threads)

    def __call__(self, batch):
        return torch.from_numpy(self.session.run(None, {'faces': batch.numpy()})[0])


def onnxruntime_variant(model, threads):
    """Return the ONNX Runtime variant, or None when onnxruntime is not installed."""
    from mask_detection.engines import onnxruntime_available
    return OnnxRuntimeVariant(model, threads) if onnxruntime_available() else None


def classifier_main(args):
    """Time the classifier's variants on the faces the default pipeline finds."""
    from mask_detection.pipeline import MaskDetectionPipeline, PipelineConfig
    frames, source = load_frames(args.images, args.size, args.frames)
    model_path, note = resolve_model_path(args.model)
    if note:
        print(f'note: {note}')
    pipeline = MaskDetectionPipeline(_with_model(PipelineConfig(), model_path))
    classifier = pipeline.classifier
    work = [(frame, pipeline.face_detector.detect(frame)) for frame in frames]
    work = [(frame, boxes) for frame, boxes in work if boxes]
    faces = sum(len(b) for _, b in work) / max(1, len(work))
    print(f'frames: {source}; {len(work)} with faces, {faces:.2f} faces per frame; '
          f'load average {load_average()}')
    model = classifier_module.load_model_file(model_path)[0]
    per_frame = [torch.from_numpy(classifier.preprocess(f, b)) for f, b in work]
    groups = {'faces of a frame': per_frame}
    if args.batch_sizes:
        crops = torch.cat(per_frame)
        groups = {f'batch {size}': [crops[i:i + size]
                                    for i in range(0, len(crops) - size + 1, size)]
                  for size in args.batch_sizes}
    print(f'{"batches":<16} {"variant":<28} {"threads":>7} {"wall ms/batch":>13} '
          f'{"cpu ms/batch":>12} {"max |logit diff|":>16}')
    for threads in args.torch_threads:
        torch.set_num_threads(threads)
        variants = classifier_variants(model)
        ort_variant = onnxruntime_variant(model, threads)
        if ort_variant is not None:
            variants['onnxruntime'] = ort_variant
        for group, batches in groups.items():
            reference = [variants['eager (NCHW)'](b).detach() for b in batches[:5]]
            timings = {name: [0.0, 0.0] for name in variants}
            with torch.inference_mode():
                for name, variant in variants.items():
                    for batch in batches[:3]:
                        variant(batch)
                for _ in range(args.rounds):
                    for name, variant in variants.items():
                        cpu, wall = time.process_time(), time.perf_counter()
                        for batch in batches:
                            variant(batch)
                        timings[name][0] += time.perf_counter() - wall
                        timings[name][1] += time.process_time() - cpu
                for name, variant in variants.items():
                    diff = max(float((variant(b) - r).abs().max())
                               for b, r in zip(batches, reference))
                    count = args.rounds * len(batches)
                    print(f'{group:<16} {name:<28} {threads:>7} '
                          f'{1000 * timings[name][0] / count:13.3f} '
                          f'{1000 * timings[name][1] / count:12.3f} {diff:16.2e}', flush=True)
    print(f'load average {load_average()}')
    return 0


def scales_main(args):
    """Print CenterFace's dev-set recall per face size for input scales and input-side caps."""
    from benchmarks.detector_benchmark import BUCKETS, DEFAULT_DATA as VOC_DATA, evaluate
    data = Path(args.data) if args.data else VOC_DATA
    if not (data / 'annotations').is_dir():
        print(f'no VOC data set at {data}', file=sys.stderr)
        return 2
    configs = [(f'scale {scale:g}', {'scale': scale}) for scale in args.scales]
    configs += [(f'longer side <= {side} px', {'scale': 1.0, 'max_input_side': side})
                for side in args.max_sides]
    print(f'{data}: CenterFace score {args.threshold}, recall at IoU 0.3 per face size '
          f'(short side); load average {load_average()}')
    print(f'{"input":<24} ' + ' '.join(f'{label:>8}' for _, _, label in BUCKETS)
          + f' {"precision":>9} {"640x480 ->":>11}')
    for name, settings in configs:
        detector = create_face_detector('centerface', score_threshold=args.threshold,
                                        **settings)
        table, precision, _, _ = evaluate(detector, data)
        cells = table['all']
        recall = ' '.join(f'{100.0 * cells[b][0] / cells[b][1]:7.1f}%' if b in cells
                          else f'{"-":>8}' for _, _, b in BUCKETS)
        in_w, in_h, pad_w, pad_h = detector.input_size(640, 480)
        print(f'{name:<24} {recall} {precision:9.2f} {f"{pad_w}x{pad_h}":>11}', flush=True)
    return 0


# ---------------------------------------------------------------------------------------------
# Command line

def pipeline_main(args):
    frames, source = load_frames(args.images, args.size, args.frames)
    print(f'frames: {source}; {args.rounds} interleaved rounds per thread setting')
    threads = [t for spec in args.threads for t in (('1', 'all') if spec == 'both' else (spec,))]
    report = run_pipeline_benchmark(frames, args.rounds, threads, args.model,
                                    tuple(args.detectors), not args.no_draw_row,
                                    tuple(args.scales), engines=tuple(args.engines),
                                    variants=tuple(args.variant))
    report['frames_source'] = source
    label = ('all threads' if 'all' in report['results']
             else f'threads {next(iter(report["results"]))}')
    print(f'default {report["default_fps"]:.1f} fps, naive {report["naive_fps"]:.1f} fps, '
          f'ratio {report["ratio"]:.2f} ({label})')
    if 'in_flight_fps' in report:
        print(f'default with {report["frames_in_flight"]} frames in flight (detector_node\'s '
              f'design) {report["in_flight_fps"]:.1f} fps, ratio {report["in_flight_ratio"]:.2f} '
              '(all threads)')
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, sort_keys=True) + '\n')
        print(f'wrote {args.json}')
    return 0


def _variant(text):
    """Return {field: value} from 'field=value[,field=value]' (values parsed as YAML)."""
    import yaml
    variant = {}
    for item in text.split(','):
        key, sep, value = item.partition('=')
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f'a variant looks like key=value, got {item!r}')
        variant[key.strip()] = yaml.safe_load(value)
    return variant


def _thread_spec(text):
    if text != 'both':
        parse_threads(text)
    return text


def build_parser():
    parser = argparse.ArgumentParser(prog='python -m benchmarks.benchmark', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True)

    pipe = commands.add_parser('pipeline', help='frames/s and per-stage ms, naive vs project')
    pipe.add_argument('--images', type=image_folder,
                      help='folder of images (default: the detection dev set)')
    pipe.add_argument('--size', type=parse_size, default=(640, 480), help='frame size WxH')
    pipe.add_argument('--frames', type=int, default=40, help='number of distinct frames')
    pipe.add_argument('--rounds', type=int, default=3, help='interleaved passes over the frames')
    pipe.add_argument('--threads', nargs='+', default=['1', 'all', 'all,1'], type=_thread_spec,
                      help="thread settings to run: 'both' (= 1 all), 'N', 'all', or "
                           "'CV,TORCH' such as 'all,1' (what the default configuration "
                           'itself uses; default: 1 all all,1)')
    pipe.add_argument('--detectors', nargs='*', default=['haar', 'centerface'])
    pipe.add_argument('--scales', type=float, nargs='*', default=[],
                      help='extra rows: each detector at these detection scales')
    pipe.add_argument('--engines', nargs='*', default=['opencv'],
                      choices=('auto', 'onnxruntime', 'opencv'),
                      help='extra rows: the default configuration with these inference engines '
                           '(default: opencv, the engine without onnxruntime)')
    pipe.add_argument('--variant', nargs='+', default=[], type=_variant, metavar='K=V[,K=V]',
                      help='extra rows: the default configuration with these PipelineConfig '
                           'changes, e.g. refine_threshold=0 detection_scale=0.75')
    pipe.add_argument('--model', help='classifier model file (default: the shipped one)')
    pipe.add_argument('--no-draw-row', action='store_true',
                      help='skip the default+draw row')
    pipe.add_argument('--json', help='write the results to this JSON file')
    pipe.set_defaults(func=pipeline_main)

    cls = commands.add_parser('classifier', help='classifier execution variants (channels_last..)')
    cls.add_argument('--images', type=image_folder,
                     help='folder of images (default: the detection dev set)')
    cls.add_argument('--size', type=parse_size, default=(640, 480), help='frame size WxH')
    cls.add_argument('--frames', type=int, default=40)
    cls.add_argument('--rounds', type=int, default=3)
    cls.add_argument('--torch-threads', type=int, nargs='+', default=[1, 2],
                     help='threads of torch and of the ONNX Runtime session')
    cls.add_argument('--batch-sizes', type=int, nargs='*', default=[],
                     help='time fixed batches of these sizes (real face crops) instead of the '
                          'faces of each frame')
    cls.add_argument('--model', help='classifier model file (default: the shipped one)')
    cls.set_defaults(func=classifier_main)

    scales = commands.add_parser('scales', help='CenterFace input size vs dev-set recall')
    scales.add_argument('--data', help='VOC folder (default: the detection dev set)')
    scales.add_argument('--scales', type=float, nargs='*', default=[1.0, 0.5])
    scales.add_argument('--max-sides', type=int, nargs='*', default=[320, 384])
    scales.add_argument('--threshold', type=float, default=0.35)
    scales.set_defaults(func=scales_main)

    try:
        from benchmarks import graph_benchmark
    except ImportError as error:  # ROS not importable: only the pipeline benchmark runs
        graph_benchmark = None
        graph_error = error
    for name in ('ros', 'soak', 'publish'):
        if graph_benchmark is not None:
            graph_benchmark.add_parser(commands, name)
        else:
            sub = commands.add_parser(name, help=f'(unavailable: {graph_error})')
            sub.set_defaults(func=lambda _args: sys.exit(f'ROS is not importable: {graph_error}'))
    return parser


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
