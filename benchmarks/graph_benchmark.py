"""ROS graph benchmarks: test publisher -> detector_node -> subscriber, in separate processes.

    scripts/in_env.sh python -m benchmarks.benchmark ros [--rates 30 60] [--duration 20]
    scripts/in_env.sh python -m benchmarks.benchmark soak [--duration 600] [--rate 30]

``ros``: for each input rate, without and with an ``annotated_image`` subscriber, a publisher
process sends real 640x480 frames (stamped when published) to an installed ``detector_node``
process; this process subscribes to ``detections`` and measures the end-to-end latency (image
stamp to detections received), the frames delivered and dropped, and the CPU of each node.
``soak``: the same graph at 30 Hz for a long time, sampling detector_node's resident memory.

Processes run in a fresh DDS domain, with scripts/in_env.sh's environment, and are stopped with
SIGTERM, then SIGKILL (see ../shared/ros2-pip/NOTES.md).
"""
import argparse
import array
import difflib
import json
import os
from pathlib import Path
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf('SC_CLK_TCK')
PAGE_SIZE = os.sysconf('SC_PAGE_SIZE')


def fresh_domain_id():
    """Return a DDS domain id away from the test suite's 1..100, varied per run."""
    return random.Random(os.getpid() ^ time.time_ns()).randint(120, 230)


# ---------------------------------------------------------------------------------------------
# /proc readings (psutil is not in the environment)

def cpu_seconds(pid):
    """Return user + system CPU seconds of a process (from /proc/PID/stat)."""
    with open(f'/proc/{pid}/stat') as stat:
        fields = stat.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid):
    """Return the resident set size of a process in MB (from /proc/PID/statm)."""
    with open(f'/proc/{pid}/statm') as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE / 1e6


class CpuMeter:
    """CPU % of one core used by a process between start() and stop()."""

    def __init__(self, pid):
        self.pid = pid
        self.start_cpu = self.start_wall = None
        self.last = None

    def start(self):
        self.start_cpu, self.start_wall = cpu_seconds(self.pid), time.monotonic()
        self.last = (self.start_cpu, self.start_wall)

    def sample(self):
        """Read the process's CPU time now (the last reading is kept once it has exited)."""
        if self.start_cpu is None:
            return
        try:
            self.last = (cpu_seconds(self.pid), time.monotonic())
        except (FileNotFoundError, ProcessLookupError):
            pass

    def stop(self):
        """Return the CPU % between start() and the last reading (None if never started)."""
        self.sample()
        if self.last is None:
            return None
        cpu, wall = self.last
        return 100.0 * (cpu - self.start_cpu) / max(1e-9, wall - self.start_wall)


# ---------------------------------------------------------------------------------------------
# The test publisher (its own process: `python -m benchmarks.benchmark publish ...`)

def publish_main(args):
    """Publish frames at a fixed rate; write every published stamp to --stamps-out (JSON)."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from benchmarks.common import load_frames
    frames, source = load_frames(args.images, args.size, args.frames)
    messages = []
    for frame in frames:
        data = array.array('B')
        data.frombytes(np.ascontiguousarray(frame).tobytes())
        msg = Image(height=frame.shape[0], width=frame.shape[1], encoding='bgr8',
                    is_bigendian=0, step=frame.shape[1] * 3)
        msg.data = data
        msg.header.frame_id = 'camera'
        messages.append(msg)

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    rclpy.init()
    node = rclpy.create_node('benchmark_image_publisher')
    # Like camera_node: reliable, a short queue.
    publisher = node.create_publisher(Image, args.topic, QoSProfile(
        depth=5, reliability=ReliabilityPolicy.RELIABLE))
    deadline = time.monotonic() + args.match_timeout
    while publisher.get_subscription_count() < args.subscribers:
        if time.monotonic() > deadline or stopping:
            print(f'publisher: no subscriber on {publisher.topic_name} after '
                  f'{args.match_timeout} s', flush=True)
            return 3
        rclpy.spin_once(node, timeout_sec=0.05)
    print(f'publisher: matched; {source}; {args.rate} Hz for {args.warmup} + {args.duration} s',
          flush=True)
    period = 1.0 / args.rate
    total = int(round((args.warmup + args.duration) * args.rate))
    warmup_count = int(round(args.warmup * args.rate))
    stamps, late = [], 0
    start = time.monotonic() + 0.1
    for index in range(total):
        if stopping:
            break
        target = start + index * period
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -period:
            late += 1
        msg = messages[index % len(messages)]
        now = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
        publisher.publish(msg)
        stamps.append(now)
        if index + 1 == warmup_count:
            print('publisher: measuring', flush=True)
    elapsed = time.monotonic() - start
    Path(args.stamps_out).write_text(json.dumps({
        'stamps_ns': stamps, 'warmup_count': warmup_count, 'late': late,
        'rate_hz': args.rate, 'achieved_hz': len(stamps) / elapsed if elapsed > 0 else 0.0}))
    print(f'publisher: published {len(stamps)} frames in {elapsed:.1f} s ({late} late)',
          flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


# ---------------------------------------------------------------------------------------------
# One run of the graph

def percentile(values, q):
    return float(np.percentile(values, q)) if len(values) else float('nan')


class GraphRun:
    """publisher process -> detector_node process -> subscriber (this process)."""

    def __init__(self, args, rate, annotated, log_dir, duration=None, warmup=None):
        self.args = args
        self.rate = rate
        self.annotated = annotated
        self.log_dir = Path(log_dir)
        self.duration = args.duration if duration is None else duration
        self.warmup = args.warmup if warmup is None else warmup
        self.domain = fresh_domain_id()
        from tools import ros_graph  # rclpy: only when a graph runs
        self.utils = ros_graph
        self.received = []          # (stamp ns, receive ns, detections)
        self.annotated_count = 0
        self.diagnostics = {}       # the detector's last status
        self.diagnostic_windows = []  # its statuses while measuring
        self.measuring = False

    def detector_params(self):
        """Return the detector_node parameters: --param values, and a model file if needed.

        Without a shipped model file, the node gets an untrained MaskNet (same cost).
        """
        from benchmarks.common import resolve_model_path
        params = {}
        for item in self.args.param or []:
            name, _, value = item.partition(':=')
            params[name] = _parse_value(value)
        if 'model_path' not in params:
            path, note = resolve_model_path()
            if note:
                print(f'note: {note}', flush=True)
                params['model_path'] = str(path)
        return params

    def _on_detections(self, msg):
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.received.append((stamp, now, len(getattr(msg, 'detections', []))))

    def _on_annotated(self, _msg):
        self.annotated_count += 1

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if 'detector' in status.name:
                self.diagnostics = {kv.key: kv.value for kv in status.values}
                if self.measuring:
                    self.diagnostic_windows.append(self.diagnostics)

    def start_publisher(self, stamps_path, extra_env=None):
        args = self.args
        command = [sys.executable, '-m', 'benchmarks.benchmark', 'publish',
                   '--rate', str(self.rate), '--duration', str(self.duration),
                   '--warmup', str(self.warmup), '--size', f'{args.size[0]}x{args.size[1]}',
                   '--frames', str(args.frames), '--stamps-out', str(stamps_path),
                   '--topic', args.image_topic]
        if args.images:
            command += ['--images', args.images]
        env = self.utils.node_environment(self.domain, extra_env)
        env['PYTHONPATH'] = str(REPO_ROOT) + os.pathsep + env.get('PYTHONPATH', '')
        log = open(self.log_dir / f'publisher-{self.rate}hz-{time.monotonic_ns()}.log', 'w+b')
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   cwd=REPO_ROOT)
        return process, log

    def run(self, rss_interval=None):
        """Run the graph once; return the result dict (rss samples when rss_interval)."""
        from diagnostic_msgs.msg import DiagnosticArray
        from mask_detection_msgs.msg import MaskDetectionArray
        from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        stamps_path = self.log_dir / f'stamps-{self.rate}-{int(self.annotated)}.json'
        utils = self.utils
        result = {'rate_hz': self.rate, 'annotated_subscriber': self.annotated,
                  'duration_s': self.duration, 'warmup_s': self.warmup, 'domain': self.domain}
        with utils.GraphClient(self.domain, name='benchmark_subscriber') as client:
            node = client.node
            node.create_subscription(MaskDetectionArray, self.args.detections_topic,
                                     self._on_detections,
                                     QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
            node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
            if self.annotated:
                image_qos = QoSProfile(depth=5, reliability=qos_profile_sensor_data.reliability)
                node.create_subscription(Image, self.args.annotated_topic, self._on_annotated,
                                         image_qos)
            detector = utils.NodeProcess('detector_node', self.domain, self.log_dir,
                                         params=self.detector_params(),
                                         remaps={'image': self.args.image_topic}
                                         if self.args.image_topic != 'image' else None)
            with detector:
                publisher, publisher_log = self.start_publisher(stamps_path)
                try:
                    samples = self._spin_while_publishing(client, detector, publisher,
                                                          publisher_log, result, rss_interval)
                finally:
                    if publisher.poll() is None:
                        publisher.send_signal(signal.SIGTERM)
                        try:
                            publisher.wait(10)
                        except subprocess.TimeoutExpired:
                            publisher.kill()
                            publisher.wait()
                    publisher_log.seek(0)
                    publisher_output = publisher_log.read().decode(errors='replace')
                    publisher_log.close()
                client.spin_for(1.0)  # late arrivals
                if rss_interval:
                    result['rss_mb'] = samples
            result['detector_exit_code'] = detector.process.returncode
        if not stamps_path.is_file():
            raise RuntimeError(f'the publisher wrote no stamps:\n{publisher_output}\n'
                               f'detector log:\n{detector.log()[-3000:]}')
        published = json.loads(stamps_path.read_text())
        result.update(self.statistics(published))
        result.update(self.node_statistics())
        result['detector_diagnostics'] = self.diagnostics
        return result

    def node_statistics(self):
        """Summarise the detector's own diagnostics over the measured windows."""
        def values(key):
            out = []
            for window in self.diagnostic_windows:
                try:
                    out.append(float(window[key]))
                except (KeyError, ValueError):
                    pass
            return out
        processed = values('processed_rate_hz')
        processing = values('processing_ms_mean')
        weighted = [(p, m) for p, m in zip(processed, processing) if p > 0]
        mean_ms = (sum(p * m for p, m in weighted) / sum(p for p, _ in weighted)
                   if weighted else float('nan'))
        return {'node_windows': len(self.diagnostic_windows),
                'node_processing_ms_mean': mean_ms,
                'node_processing_ms_max': max(values('processing_ms_max') or [float('nan')]),
                'node_dropped': int(sum(values('dropped_frames'))),
                'node_stage_ms_mean': {
                    key[:-len('_ms_mean')]: statistics.fmean(values(key))
                    for key in sorted(set().union(*self.diagnostic_windows))
                    if key.endswith('_ms_mean') and key != 'processing_ms_mean'
                    and values(key)} if self.diagnostic_windows else {}}

    def _spin_while_publishing(self, client, detector, publisher, publisher_log, result,
                               rss_interval):
        meters = {'detector_node': CpuMeter(detector.process.pid),
                  'publisher': CpuMeter(publisher.pid)}
        measuring = False
        samples = []
        next_sample = time.monotonic()
        start = time.monotonic()
        while publisher.poll() is None:
            client.spin_once(0.02)
            if not detector.running:
                raise RuntimeError(f'detector_node exited:\n{detector.log()[-3000:]}')
            if not measuring and b'publisher: measuring' in _read_all(publisher_log):
                measuring = self.measuring = True
                for meter in meters.values():
                    meter.start()
                own_start = os.times()
                own_wall = time.monotonic()
            if measuring:
                for meter in meters.values():
                    meter.sample()
            if rss_interval and time.monotonic() >= next_sample:
                samples.append((round(time.monotonic() - start, 1),
                                round(rss_mb(detector.process.pid), 2)))
                print(f'{samples[-1][0]:8.1f} s  {samples[-1][1]:8.1f} MB  '
                      f'({len(self.received)} detection arrays so far)', flush=True)
                next_sample += rss_interval
        self.measuring = False
        if measuring:
            result['cpu_percent'] = {name: meter.stop() for name, meter in meters.items()}
            own = os.times()
            result['cpu_percent']['subscriber'] = 100.0 * (
                own.user + own.system - own_start.user - own_start.system) / max(
                1e-9, time.monotonic() - own_wall)
        if publisher.returncode:
            raise RuntimeError(f'publisher failed ({publisher.returncode}):\n'
                               f'{_read_all(publisher_log).decode(errors="replace")}\n'
                               f'detector log:\n{detector.log()[-3000:]}')
        return samples

    def statistics(self, published):
        stamps = published['stamps_ns']
        measured = set(stamps[published['warmup_count']:])
        received = {}
        for stamp, now, faces in self.received:
            received.setdefault(stamp, (now, faces))
        latencies = [(received[s][0] - s) * 1e-6 for s in sorted(measured) if s in received]
        delivered = len(latencies)
        third = max(1, len(latencies) // 3)
        return {
            'published': len(measured), 'delivered': delivered,
            'dropped': len(measured) - delivered,
            'drop_percent': 100.0 * (len(measured) - delivered) / max(1, len(measured)),
            'unmatched_arrays': sum(1 for s in received if s not in set(stamps)),
            'publisher_late': published['late'], 'publisher_hz': published['achieved_hz'],
            'delivered_hz': delivered / self.duration if self.duration else 0.0,
            'latency_ms': {'p50': percentile(latencies, 50), 'p95': percentile(latencies, 95),
                           'max': max(latencies) if latencies else float('nan'),
                           'p50_first_third': percentile(latencies[:third], 50),
                           'p50_last_third': percentile(latencies[-third:], 50)},
            'annotated_received': self.annotated_count,
            'faces_per_array': (sum(received[s][1] for s in measured if s in received)
                                / max(1, delivered)),
        }


def _read_all(log_file):
    log_file.flush()
    with open(log_file.name, 'rb') as reader:
        return reader.read()


def _parse_value(text):
    import yaml
    return yaml.safe_load(text)


def _num(value, spec):
    return format(float('nan') if value is None else value, spec)


def format_ros_table(results):
    lines = [f'{"rate":>5} {"annot":>5} {"pub":>5} {"deliv":>5} {"drop":>5} {"p50 ms":>7} '
             f'{"p95 ms":>7} {"max ms":>7} {"p50 1st/3rd third":>17} {"det CPU%":>8} '
             f'{"pub CPU%":>8} {"sub CPU%":>8} {"out Hz":>6} {"node ms":>7} {"p95-node":>8}']
    for r in results:
        lat, cpu = r['latency_ms'], r.get('cpu_percent', {})
        lines.append(
            f'{r["rate_hz"]:5g} {"yes" if r["annotated_subscriber"] else "no":>5} '
            f'{r["published"]:5d} {r["delivered"]:5d} {r["dropped"]:5d} {lat["p50"]:7.1f} '
            f'{lat["p95"]:7.1f} {lat["max"]:7.1f} '
            f'{lat["p50_first_third"]:8.1f}/{lat["p50_last_third"]:<8.1f} '
            f'{_num(cpu.get("detector_node"), "8.1f")} {_num(cpu.get("publisher"), "8.1f")} '
            f'{_num(cpu.get("subscriber"), "8.1f")} {r["delivered_hz"]:6.1f} '
            f'{_num(r.get("node_processing_ms_mean"), "7.1f")} '
            f'{_num(lat["p95"] - r.get("node_processing_ms_mean", float("nan")), "8.1f")}')
    lines.append('(latency: image stamp -> detections received here; drop = published, never '
                 'answered; node ms = processing\n time per frame inside detector_node (its '
                 'diagnostics); p95-node = p95 latency - node ms)')
    return '\n'.join(lines)


def ros_main(args):
    from benchmarks.common import load_average, usable_cores
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix='mask_ros_benchmark_'))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f'logs in {log_dir}; load average {load_average()} ({usable_cores()} cores)')
    results = []
    for rate in args.rates:
        for annotated in ((False, True) if args.annotated == 'both'
                          else ((args.annotated == 'yes'),)):
            run = GraphRun(args, rate, annotated, log_dir)
            result = run.run()
            results.append(result)
            print(format_ros_table([result]).splitlines()[1], flush=True)
    print(format_ros_table(results))
    print(f'load average after {load_average()}')
    if args.json:
        Path(args.json).write_text(json.dumps({'runs': results, 'load_average': load_average()},
                                              indent=2) + '\n')
        print(f'wrote {args.json}')
    return 0


def soak_main(args):
    from benchmarks.common import load_average
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix='mask_soak_'))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f'soak: detector_node at {args.rate} Hz for {args.duration} s, RSS every '
          f'{args.interval} s; logs in {log_dir}; load average {load_average()}', flush=True)
    run = GraphRun(args, args.rate, args.annotated == 'yes', log_dir, duration=args.duration,
                   warmup=args.warmup)
    result = run.run(rss_interval=args.interval)
    samples = result['rss_mb']
    after_warmup = [v for t, v in samples if t >= args.warmup] or [v for _, v in samples]
    result['rss_summary'] = {
        'first_after_warmup_mb': after_warmup[0], 'last_mb': after_warmup[-1],
        'max_mb': max(after_warmup), 'min_mb': min(after_warmup),
        'growth_mb': after_warmup[-1] - after_warmup[0],
        'spread_mb': max(after_warmup) - min(after_warmup)}
    s = result['rss_summary']
    print(f'RSS after warm-up: first {s["first_after_warmup_mb"]:.1f} MB, last '
          f'{s["last_mb"]:.1f} MB, growth {s["growth_mb"]:+.1f} MB, max-min '
          f'{s["spread_mb"]:.1f} MB; delivered {result["delivered"]} of {result["published"]}, '
          f'dropped {result["dropped"]}, p95 latency {result["latency_ms"]["p95"]:.1f} ms')
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + '\n')
        print(f'wrote {args.json}')
    return 0


def _positive_float(text):
    """Argparse type: a rate in Hz must be above 0 (0 would divide by zero mid-run)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'not a number: {text!r}')
    if not value > 0:
        raise argparse.ArgumentTypeError(f'must be above 0, got {text}')
    return value


def _detector_parameter(text):
    """Argparse type: NAME:=VALUE with a NAME that detector_node declares.

    The node would silently ignore an unknown name, and the run would measure the defaults.
    """
    name, separator, _ = text.partition(':=')
    if not separator or not name:
        raise argparse.ArgumentTypeError(f'expected NAME:=VALUE, got {text!r}')
    from mask_detection.detector_node import parameter_specs
    known = [spec.name for spec in parameter_specs()]
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f' (did you mean {", ".join(close)}?)' if close else ''
        raise argparse.ArgumentTypeError(f'{name!r} is not a parameter of detector_node{hint}')
    return text


def _common(parser):
    from benchmarks.common import image_folder, parse_size
    parser.add_argument('--images', type=image_folder,
                        help='folder of images (default: the detection dev set)')
    parser.add_argument('--size', type=parse_size, default=(640, 480), help='frame size WxH')
    parser.add_argument('--frames', type=int, default=30, help='distinct frames, cycled')


def add_parser(commands, name):
    """Add the 'ros', 'soak' or internal 'publish' sub-command to ``commands``."""
    if name == 'publish':
        sub = commands.add_parser('publish', help='(internal) the test image publisher')
        _common(sub)
        sub.add_argument('--rate', type=float, default=30.0)
        sub.add_argument('--duration', type=float, default=20.0)
        sub.add_argument('--warmup', type=float, default=5.0)
        sub.add_argument('--topic', default='image')
        sub.add_argument('--subscribers', type=int, default=1)
        sub.add_argument('--match-timeout', type=float, default=60.0)
        sub.add_argument('--stamps-out', required=True)
        sub.set_defaults(func=publish_main)
        return sub
    if name == 'ros':
        sub = commands.add_parser('ros', help='latency, drops and CPU of the node graph')
        sub.add_argument('--rates', type=_positive_float, nargs='+', default=[30.0, 60.0])
        sub.add_argument('--duration', type=float, default=20.0, help='measured seconds')
        sub.add_argument('--warmup', type=float, default=5.0, help='unmeasured seconds first')
        sub.add_argument('--annotated', choices=('both', 'no', 'yes'), default='both',
                         help='run without and/or with an annotated_image subscriber')
        sub.set_defaults(func=ros_main)
    else:
        sub = commands.add_parser('soak', help='detector_node memory over a long run')
        sub.add_argument('--rate', type=float, default=30.0)
        sub.add_argument('--duration', type=float, default=600.0, help='seconds (default 10 min)')
        sub.add_argument('--warmup', type=float, default=30.0,
                         help='seconds before the RSS baseline')
        sub.add_argument('--interval', type=float, default=10.0, help='seconds between samples')
        sub.add_argument('--annotated', choices=('no', 'yes'), default='no')
        sub.set_defaults(func=soak_main)
    _common(sub)
    sub.add_argument('--param', action='append', type=_detector_parameter,
                     metavar='NAME:=VALUE',
                     help='detector_node parameter (repeatable)')
    sub.add_argument('--image-topic', default='image')
    sub.add_argument('--detections-topic', default='detections')
    sub.add_argument('--annotated-topic', default='annotated_image')
    sub.add_argument('--log-dir', help='folder for node logs (default: a temporary one)')
    sub.add_argument('--json', help='write the results to this JSON file')
    return sub


if __name__ == '__main__':
    argparse.ArgumentParser().error('run it as: python -m benchmarks.benchmark ros|soak')
