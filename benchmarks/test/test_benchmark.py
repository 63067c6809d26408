"""The benchmark code paths run on a few real frames and report what they promise (not timed)."""
import json

from conftest import ros_domain_id
import cv2
import numpy as np
import pytest
import skimage.data

from benchmarks import benchmark
from benchmarks import common
from benchmarks import graph_benchmark


@pytest.fixture(scope='module')
def astronaut_bgr():
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


def test_load_frames_resizes_a_folder_of_images(tmp_path, astronaut_bgr):
    cv2.imwrite(str(tmp_path / 'a.png'), astronaut_bgr)
    cv2.imwrite(str(tmp_path / 'b.jpg'), astronaut_bgr[:300, :400])
    (tmp_path / 'notes.txt').write_text('not an image')
    frames, source = benchmark.load_frames(tmp_path, (320, 240), count=5)
    assert len(frames) == 2
    assert all(f.shape == (240, 320, 3) and f.dtype == np.uint8 for f in frames)
    assert str(tmp_path) in source


def test_load_frames_without_data_uses_builtin_photos(tmp_path, monkeypatch):
    monkeypatch.setattr(common, 'DEFAULT_DATA', tmp_path / 'absent')
    frames, source = benchmark.load_frames(None, (160, 120), count=3)
    assert len(frames) == 3 and frames[0].shape == (120, 160, 3)
    assert 'astronaut' in source
    assert not np.array_equal(frames[0], frames[1])


def test_load_frames_names_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match='absent'):
        benchmark.load_frames(tmp_path / 'absent')


def test_frame_message_round_trips_through_the_naive_conversion(astronaut_bgr):
    msg = benchmark.frame_message(astronaut_bgr)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (512, 512, 1536, 'bgr8')
    view = np.frombuffer(msg.data, np.uint8).reshape(512, 512, 3)
    assert np.array_equal(view, astronaut_bgr)


def test_naive_system_finds_and_classifies_the_astronaut(astronaut_bgr):
    model_path, _ = benchmark.resolve_model_path()
    naive = benchmark.NaiveSystem(model_path)
    faces, times = naive.process_message(benchmark.frame_message(astronaut_bgr))
    assert faces >= 1
    assert set(times) == set(benchmark.STAGES)
    assert all(value >= 0.0 for value in times.values())
    assert times['detect'] > 0.0 and times['classify'] > 0.0


def test_pipeline_benchmark_cli_prints_table_and_writes_json(tmp_path, capsys, astronaut_bgr):
    images = tmp_path / 'images'
    images.mkdir()
    cv2.imwrite(str(images / 'astronaut.png'), astronaut_bgr)
    cv2.imwrite(str(images / 'flipped.png'), astronaut_bgr[:, ::-1])
    out = tmp_path / 'result.json'
    assert benchmark.main(['pipeline', '--images', str(images), '--size', '320x240',
                           '--frames', '2', '--rounds', '1', '--threads', 'both',
                           '--json', str(out)]) == 0
    printed = capsys.readouterr().out
    for text in ('(a) naive', '(b) default', '(c) haar', '(c) centerface', 'threads: 1',
                 'threads: all', 'convert', 'detect', 'classify', 'draw', 'x naive'):
        assert text in printed
    report = json.loads(out.read_text())
    assert report['naive_fps'] > 0 and report['default_fps'] > 0
    assert report['ratio'] == pytest.approx(report['default_fps'] / report['naive_fps'])
    assert report['size'] == '320x240' and report['frames'] == 2
    for label in ('1', 'all'):
        rows = report['results'][label]['systems']
        assert rows['(a) naive']['ratio'] == pytest.approx(1.0)
        for row in rows.values():
            assert row['frames'] == 2
            assert row['mean_ms'] >= row['detect_ms'] > 0.0
        # Every row names its engines; the OpenCV-DNN row is there beside the default.
        assert rows['(a) naive']['engine'] == 'opencv+torch'
        assert rows['(b) default/opencv']['engine'] == 'opencv+torch'
        from mask_detection.engines import resolve_engine
        expected = 'onnxruntime+onnxruntime' if resolve_engine('auto') == 'onnxruntime' \
            else 'opencv+torch'
        assert rows['(b) default']['engine'] == expected
    assert 'onnxruntime+onnxruntime' in printed or 'opencv+torch' in printed
    # With all threads on 2+ cores, detector_node's design (2 frames in flight) has its row.
    if common.usable_cores() >= 2:
        row = report['results']['all']['systems']['(b) default, 2 in flight']
        assert row['frames'] == 2 and row['fps'] > 0
        assert report['frames_in_flight'] == 2
        assert report['in_flight_fps'] == pytest.approx(row['fps'])
        assert report['in_flight_ratio'] == pytest.approx(row['fps'] / report['naive_fps'])
        assert '2 frames in flight' in printed
        assert '(b) default, 2 in flight' not in report['results']['1']['systems']


def test_frames_in_flight_find_what_one_pipeline_finds(astronaut_bgr):
    """Two workers over a round: every frame processed once, the same faces, fps by wall time."""
    from mask_detection.pipeline import PipelineConfig
    frames = [astronaut_bgr, astronaut_bgr[:, ::-1].copy(), np.full_like(astronaut_bgr, 90)]
    messages = [benchmark.frame_message(frame) for frame in frames]
    system = benchmark.InFlightSystem('in flight', PipelineConfig(), 2)
    sequential = [system.workers[0].process_message(msg)[0] for msg in messages]
    assert sequential[0] >= 1 and sequential[2] == 0
    results, wall_ms = system.process_round(messages)
    assert [faces for faces, _, _ in results] == sequential
    assert wall_ms > 0 and all(ms > 0 for _, _, ms in results)
    measurement = benchmark.Measurement('in flight')
    for faces, times, ms in results:
        measurement.add(faces, times, ms)
    measurement.wall_ms = wall_ms
    assert measurement.summary()['fps'] == pytest.approx(3000.0 / wall_ms)


def test_graph_statistics_count_drops_and_latency():
    run = graph_benchmark.GraphRun.__new__(graph_benchmark.GraphRun)
    run.duration = 1.0
    run.annotated_count = 0
    ms = 1_000_000
    stamps = [i * 33 * ms for i in range(10)]
    # Two warm-up frames; of the 8 measured, frames 5 and 7 never come back.
    run.received = [(s, s + (10 + i) * ms, 1) for i, s in enumerate(stamps) if i not in (5, 7)]
    run.received.append((123, 456, 0))  # an array with a stamp that was never published
    stats = run.statistics({'stamps_ns': stamps, 'warmup_count': 2, 'late': 0,
                            'achieved_hz': 30.0})
    assert (stats['published'], stats['delivered'], stats['dropped']) == (8, 6, 2)
    assert stats['unmatched_arrays'] == 1
    assert stats['latency_ms']['max'] == pytest.approx(19.0)
    assert stats['latency_ms']['p50'] == pytest.approx(np.median([12, 13, 14, 16, 18, 19]))


def test_proc_readings_of_this_process():
    import os
    assert graph_benchmark.rss_mb(os.getpid()) > 10.0
    assert graph_benchmark.cpu_seconds(os.getpid()) > 0.0


@pytest.mark.graph
@pytest.mark.slow
def test_ros_benchmark_runs_a_short_graph(tmp_path, capsys, monkeypatch):
    from tools import ros_graph
    ros_graph.console_script('detector_node')  # make setup installs it: fails when missing
    monkeypatch.setattr(graph_benchmark, 'fresh_domain_id', ros_domain_id)
    out = tmp_path / 'ros.json'
    assert benchmark.main(['ros', '--rates', '30', '--duration', '2', '--warmup', '2',
                           '--annotated', 'yes', '--frames', '3',
                           '--log-dir', str(tmp_path), '--json', str(out)]) == 0
    printed = capsys.readouterr().out
    assert 'p95 ms' in printed and 'det CPU%' in printed
    run = json.loads(out.read_text())['runs'][0]
    assert run['published'] >= 50
    assert run['delivered'] > 0 and run['delivered'] + run['dropped'] == run['published']
    assert run['latency_ms']['p50'] > 0
    assert run['annotated_received'] > 0
    assert run['cpu_percent']['detector_node'] > 0


def test_thread_settings_parse():
    assert benchmark.parse_threads('1') == ('1', 1, 1)
    assert benchmark.parse_threads('all') == ('all', 0, 0)
    assert benchmark.parse_threads('all,1') == ('cv2 all, torch 1', 0, 1)
    with pytest.raises(Exception, match='threads'):
        benchmark.parse_threads('many')


def test_classifier_variants_agree_and_are_timed(tmp_path, capsys, astronaut_bgr):
    cv2.imwrite(str(tmp_path / 'astronaut.png'), astronaut_bgr)
    from mask_detection.engines import onnxruntime_available
    expected = {'eager (NCHW)', 'channels_last', 'channels_last + jit.freeze'}
    if onnxruntime_available():
        expected.add('onnxruntime')
    for extra, group in (([], 'faces of a frame'), (['--batch-sizes', '1'], 'batch 1')):
        assert benchmark.main(['classifier', '--images', str(tmp_path), '--frames', '1',
                               '--rounds', '1', '--torch-threads', '1'] + extra) == 0
        lines = capsys.readouterr().out.splitlines()
        rows = {line[len(group):].strip().split('  ')[0]: line.split() for line in lines
                if line.startswith(group)}
        assert set(rows) == expected
        for fields in rows.values():
            assert float(fields[-3]) > 0.0          # wall ms per batch
            assert float(fields[-1]) < 1e-4         # same logits as the eager model


def test_scales_prints_recall_per_bucket(tmp_path, capsys, astronaut_bgr):
    (tmp_path / 'images').mkdir()
    (tmp_path / 'annotations').mkdir()
    cv2.imwrite(str(tmp_path / 'images' / 'astronaut.jpg'), astronaut_bgr)
    # The astronaut's face, roughly (x 170-280, y 70-190): one >= 48 px face.
    (tmp_path / 'annotations' / 'astronaut.xml').write_text(
        '<annotation><size><width>512</width><height>512</height></size><object>'
        '<name>without_mask</name><bndbox><xmin>170</xmin><ymin>70</ymin><xmax>280</xmax>'
        '<ymax>190</ymax></bndbox></object></annotation>')
    assert benchmark.main(['scales', '--data', str(tmp_path), '--scales', '0.5',
                           '--max-sides', '320']) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith(('scale', 'longer'))]
    assert len(rows) == 2
    assert all('100.0%' in row for row in rows)    # the face is found at both sizes
    assert '320x256' in rows[1]                     # 640x480 capped to 320x240, padded
