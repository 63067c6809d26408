"""ROS 2 graphs from the checkout: node processes and a client node in their DDS domain.

Used by the graph tests, the demo runner and the graph benchmarks (``ros2 run`` and ``launch``
are not installable with ROS 2 from PyPI wheels).

    with GraphClient(domain) as client:
        arrays = client.collect(MaskDetectionArray, 'detections')
        with NodeProcess('detector_node', domain, tmp_path, params={'model_path': model},
                         remaps={'image': 'camera/image_raw'}) as detector:
            assert client.spin_until(lambda: arrays, timeout=20), detector.log()

Node processes are the installed console scripts (install/mask_detection/lib/mask_detection/,
what ``ros2 run`` would start), so run ``make setup`` after changing the package.  They are
stopped with SIGTERM and, if that does not end them, SIGKILL (see ../shared/ros2-pip/NOTES.md:
SIGINT can be lost before rclpy.init(), and Fast DDS shutdown has been seen to hang).
"""
import os
from pathlib import Path
import re
import signal
import subprocess
import time

from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.srv import GetParameters, ListParameters, SetParameters
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
INSTALL_LIB = REPO_ROOT / 'install' / 'mask_detection' / 'lib' / 'mask_detection'


def console_script(name):
    """Return the path of an installed mask_detection console script (fails if absent)."""
    path = INSTALL_LIB / name
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f'console script {path} is not installed: run `make setup`')
    return path


def ros_args(params=None, remaps=None, namespace=None):
    """Return ``--ros-args`` command-line arguments for parameters, remaps and a namespace."""
    args = []
    for name, value in (params or {}).items():
        args += ['-p', f'{name}:={_yaml_scalar(value)}']
    for source, target in (remaps or {}).items():
        args += ['-r', f'{source}:={target}']
    if namespace:
        args += ['-r', f'__ns:=/{namespace.lstrip("/")}']
    return ['--ros-args'] + args if args else []


def _yaml_scalar(value):
    # rcl parses -p values as YAML: quote strings such as '0' or 'true' that would change type.
    return yaml.safe_dump(value, default_flow_style=True, width=1 << 16).strip().removesuffix(
        '\n...').strip()


def node_environment(domain_id, extra=None):
    """Return the environment for a node process in DDS domain ``domain_id``."""
    env = dict(os.environ)
    # ROS from PyPI wheels: let the child's bootstrapper set up its library path again.  Keep
    # LD_LIBRARY_PATH: it holds install/mask_detection_msgs/lib (the message type support).
    env.pop('_ROS_WHEELS_BOOTSTRAP_COMPLETE', None)
    env.update({
        'ROS_DOMAIN_ID': str(domain_id),
        'ROS_AUTOMATIC_DISCOVERY_RANGE': env.get('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST'),
        'PYTHONUNBUFFERED': '1',
        'RCUTILS_LOGGING_BUFFERED_STREAM': '0',
        'RCUTILS_COLORIZED_OUTPUT': '0',
    })
    env.update(extra or {})
    return env


class NodeProcess:
    """An installed console script running as a child process, its output in a log file."""

    def __init__(self, executable, domain_id, log_dir, params=None, remaps=None,
                 namespace=None, args=(), env=None, log_name=None):
        self.executable = str(console_script(executable))
        self.name = executable
        self.command = [self.executable, *args, *ros_args(params, remaps, namespace)]
        self.env = node_environment(domain_id, env)
        self.log_path = Path(log_dir) / (log_name or f'{executable}-{time.monotonic_ns()}.log')
        self.process = None

    def start(self):
        """Start the process; returns self."""
        with open(self.log_path, 'wb') as log_file:
            self.process = subprocess.Popen(self.command, stdout=log_file,
                                            stderr=subprocess.STDOUT, env=self.env)
        return self

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def wait(self, timeout):
        """Wait for the process to exit by itself; return its exit code, None if still up."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=10.0):
        """SIGTERM, then SIGKILL after ``timeout`` seconds; return the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                with open(self.log_path, 'a') as log_file:
                    log_file.write(f'\n[ros_graph] no exit {timeout} s after SIGTERM: killed\n')
        return self.process.returncode

    def log(self):
        """Return everything the process has written so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors='replace')
        except FileNotFoundError:
            return ''

    def log_tail(self, lines=15):
        """Return the last ``lines`` lines of the log, indented (for error messages)."""
        return '\n'.join(f'    {line}' for line in self.log().splitlines()[-lines:])

    def count(self, pattern):
        """Return how many times the regular expression ``pattern`` occurs in the log."""
        return len(re.findall(pattern, self.log()))

    def wait_for_log(self, pattern, timeout, count=1):
        """Wait until ``pattern`` occurs ``count`` times in the log (or the process ends)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count(pattern) >= count:
                return True
            if not self.running:
                break
            time.sleep(0.05)
        return self.count(pattern) >= count

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


class GraphClient:
    """A test-side rclpy node with its own context in DDS domain ``domain_id``."""

    def __init__(self, domain_id, name='graph_test_client'):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def spin_once(self, timeout=0.05):
        self.executor.spin_once(timeout_sec=timeout)

    def spin_for(self, seconds):
        """Process callbacks for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.spin_once(min(0.05, max(0.0, deadline - time.monotonic())))

    def spin_until(self, predicate, timeout):
        """Process callbacks until ``predicate()`` is true; return its last value."""
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            self.spin_once()
        return predicate()

    def collect(self, msg_type, topic, qos=10):
        """Subscribe to ``topic``; return the list that received messages are appended to."""
        received = []
        self.node.create_subscription(msg_type, topic, received.append, qos)
        return received

    def publisher(self, msg_type, topic, qos=10, wait_for_subscribers=1, timeout=15.0):
        """Create a publisher and wait until ``wait_for_subscribers`` subscriptions matched."""
        publisher = self.node.create_publisher(msg_type, topic, qos)
        if not self.spin_until(
                lambda: publisher.get_subscription_count() >= wait_for_subscribers, timeout):
            raise TimeoutError(f'no subscriber on {publisher.topic_name} after {timeout} s')
        return publisher

    def publish_until(self, publisher, msg, predicate, timeout, period=0.5):
        """Publish ``msg`` every ``period`` s until ``predicate()``; return its last value.

        A publisher can see a subscription before the subscription sees the publisher, and
        what is published in between is lost: a single publish is not a reliable test step.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            publisher.publish(msg)
            if self.spin_until(predicate, min(period, max(0.0, deadline - time.monotonic()))):
                return True
        return predicate()

    def _call(self, srv_type, service, request, timeout):
        client = self.node.create_client(srv_type, service)
        try:
            if not self.spin_until(client.service_is_ready, timeout):
                raise TimeoutError(f'service {service} not available after {timeout} s')
            future = client.call_async(request)
            if not self.spin_until(future.done, timeout):
                raise TimeoutError(f'service {service} did not answer within {timeout} s')
            return future.result()
        finally:
            self.node.destroy_client(client)

    def set_parameters(self, node_name, values, timeout=10.0):
        """Set parameters of a remote node; return its SetParametersResult list."""
        request = SetParameters.Request(parameters=[
            Parameter(name, value=value).to_parameter_msg() for name, value in values.items()])
        return self._call(SetParameters, f'{node_name}/set_parameters', request,
                          timeout).results

    def get_parameters(self, node_name, names, timeout=10.0):
        """Return {name: value} of a remote node's parameters."""
        response = self._call(GetParameters, f'{node_name}/get_parameters',
                              GetParameters.Request(names=list(names)), timeout)
        return {name: Parameter.from_parameter_msg(ParameterMsg(name=name, value=value)).value
                for name, value in zip(names, response.values)}

    def list_parameters(self, node_name, timeout=10.0):
        """Return the names of all parameters a remote node declares."""
        response = self._call(ListParameters, f'{node_name}/list_parameters',
                              ListParameters.Request(), timeout)
        return list(response.result.names)
