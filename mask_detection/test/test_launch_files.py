"""Launch files and parameter files, checked against the installed nodes, and launched.

Statically (syntax trees): every node they start is an installed console script, every
parameter they set is one that node declares (asked from the running node over its parameter
services), every launch argument they use is declared, every file they reference is installed.
For real: `ros2 launch` as a user runs it (arguments, namespaces, `use_camera:=false` +
`image_topic`, parameter files, the Fast DDS profile variables, the ros2 CLI, Ctrl-C) and
`launch.LaunchService` in this process's main thread.  `make setup` installs launch and the
ros2 CLI from ../shared/ros2-tools: these tests skip only when that wheelhouse (outside the
repository) is absent, and fail when it is there but its tools are not installed.
"""
import ast
import importlib.util
import os
from pathlib import Path
import shutil
import threading
import time

from conftest import ros_domain_id
import cv2
from graph_utils import (GraphClient, INSTALL_LIB, NodeProcess, REPO_ROOT, write_frames,
                         write_video)
import numpy as np
import pytest
from sensor_msgs.msg import Image
import skimage.data
import yaml

from mask_detection import image_codec
from mask_detection_msgs.msg import MaskDetectionArray
from tools.ros_graph import LaunchProcess, LOCALHOST_PROFILE, ros2_cli, shm_segment_sizes

PACKAGE_DIR = REPO_ROOT / 'mask_detection'
LAUNCH_FILES = sorted((PACKAGE_DIR / 'launch').glob('*.launch.py'))
CONFIG_FILES = {'camera_node': PACKAGE_DIR / 'config' / 'camera.yaml',
                'detector_node': PACKAGE_DIR / 'config' / 'detector.yaml',
                'greeter_node': PACKAGE_DIR / 'config' / 'greeter.yaml',
                'viewer_node': PACKAGE_DIR / 'config' / 'viewer.yaml'}
INSTALLED_SHARE = REPO_ROOT / 'install' / 'mask_detection' / 'share' / 'mask_detection'
PYTHON_TYPES = {'str': str, 'int': int, 'float': float, 'bool': bool}


class LaunchFile:
    """What a launch file's syntax tree says: its nodes, arguments and file names."""

    def __init__(self, path):
        self.path = path
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.constants = {
            target.id: node.value.value
            for node in self.tree.body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            for target in node.targets if isinstance(target, ast.Name)}
        self.calls = [node for node in ast.walk(self.tree) if isinstance(node, ast.Call)]

    def _value(self, node):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return self.constants.get(node.id)
        return None

    def calls_to(self, name):
        return [call for call in self.calls
                if getattr(call.func, 'id', getattr(call.func, 'attr', None)) == name]

    def _keywords(self, call):
        """Return {name: value node} of a call; ``**options`` of ``options = dict(...)`` too."""
        keywords = {}
        for keyword in call.keywords:
            if keyword.arg is None and isinstance(keyword.value, ast.Name):
                for node in ast.walk(self.tree):
                    if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and \
                            getattr(node.value.func, 'id', None) == 'dict' and any(
                                getattr(t, 'id', None) == keyword.value.id for t in node.targets):
                        keywords.update(self._keywords(node.value))
            else:
                keywords[keyword.arg] = keyword.value
        return keywords

    def nodes(self):
        """Return [(package, executable, {parameter: value_type name or None})]."""
        result = []
        for call in self.calls_to('Node') + self.calls_to('LifecycleNode'):
            keywords = self._keywords(call)
            parameters = {}
            for item in getattr(keywords.get('parameters'), 'elts', []):
                if isinstance(item, ast.Dict):
                    for key, value in zip(item.keys, item.values):
                        parameters[self._value(key)] = self._value_type(value)
            result.append((self._value(keywords['package']),
                           self._value(keywords['executable']), parameters))
        return result

    @staticmethod
    def _value_type(node):
        """Return the Python type name the parameter value will have (None: unknown)."""
        if isinstance(node, ast.Constant):
            return type(node.value).__name__
        if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'ParameterValue':
            for keyword in node.keywords:
                if keyword.arg == 'value_type':
                    return keyword.value.id
        return None

    def first_arguments(self, name):
        return {self._value(call.args[0]) for call in self.calls_to(name) if call.args}

    def referenced_files(self):
        """File names given as string constants (config/*.yaml, *.xml)."""
        return {node.value for node in ast.walk(self.tree)
                if isinstance(node, ast.Constant) and isinstance(node.value, str)
                and node.value.endswith(('.yaml', '.xml'))}

    def includes(self):
        """Return [(included launch file name, {argument names passed})]."""
        names = [node.value for node in ast.walk(self.tree) if isinstance(node, ast.Constant)
                 and isinstance(node.value, str) and node.value.endswith('.launch.py')]
        result = []
        for call in self.calls_to('IncludeLaunchDescription'):
            passed = set()
            for keyword in call.keywords:
                if keyword.arg == 'launch_arguments':
                    mapping = getattr(keyword.value, 'func', None)
                    mapping = mapping.value if isinstance(mapping, ast.Attribute) else None
                    if isinstance(mapping, ast.Dict):
                        passed = {self._value(key) for key in mapping.keys}
            result.append((names[len(result)], passed))
        return result


@pytest.fixture(scope='module')
def declared_parameters(tmp_path_factory, model_path):
    """Start the installed nodes; return {executable: {parameter: default value}}."""
    log_dir = tmp_path_factory.mktemp('logs')
    domain = ros_domain_id()
    ignored = {'use_sim_time', 'start_type_description_service'}
    declared = {}
    with GraphClient(domain) as client, \
            NodeProcess('camera_node', domain, log_dir,
                        params={'source': '/dev/video_missing_for_test',
                                'reconnect_interval': 60.0}) as camera, \
            NodeProcess('detector_node', domain, log_dir,
                        params={'model_path': str(model_path)}) as detector, \
            NodeProcess('greeter_node', domain, log_dir) as greeter, \
            NodeProcess('viewer_node', domain, log_dir, params={'port': 0}) as viewer:
        for process in (camera, detector, greeter, viewer):
            names = [name for name in client.list_parameters(f'/{process.name}', timeout=30)
                     if name not in ignored]
            declared[process.name] = client.get_parameters(f'/{process.name}', names)
        assert camera.running and detector.running and greeter.running and viewer.running, \
            camera.log() + detector.log() + greeter.log() + viewer.log()
    # managed_detector_node (also named detector_node) declares the same parameters.
    with GraphClient(domain) as client, \
            NodeProcess('managed_detector_node', domain, log_dir) as managed:
        names = [name for name in client.list_parameters('/detector_node', timeout=30)
                 if name not in ignored]
        declared[managed.name] = client.get_parameters('/detector_node', names)
        assert managed.running, managed.log()
    # The values set on the command line above are not the defaults.
    declared['camera_node'].update(source='0', reconnect_interval=1.0)
    declared['detector_node']['model_path'] = ''
    declared['viewer_node']['port'] = 8080
    return declared


@pytest.mark.graph
def test_managed_detector_declares_what_detector_node_declares(declared_parameters):
    assert declared_parameters['managed_detector_node'] == declared_parameters['detector_node']


def test_there_are_launch_files():
    assert {path.name for path in LAUNCH_FILES} >= {'live.launch.py', 'video.launch.py'}


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda path: path.name)
def test_launch_file_structure(path):
    launch = LaunchFile(path)
    functions = {node.name for node in launch.tree.body if isinstance(node, ast.FunctionDef)}
    assert 'generate_launch_description' in functions
    nodes = launch.nodes()
    for name, passed in launch.includes():
        included = LaunchFile(PACKAGE_DIR / 'launch' / name)
        assert (INSTALLED_SHARE / 'launch' / name).is_file(), f'{name} is not installed'
        unknown = passed - included.first_arguments('DeclareLaunchArgument')
        assert passed and not unknown, f'{name} declares no argument {sorted(unknown)}'
        nodes += included.nodes()
    assert nodes, 'starts no node'
    for package, executable, _ in nodes:
        assert package == 'mask_detection'
        assert os.access(INSTALL_LIB / executable, os.X_OK), \
            f'{executable} is not an installed console script of mask_detection'
    used = launch.first_arguments('LaunchConfiguration')
    declared = launch.first_arguments('DeclareLaunchArgument')
    assert used <= declared, f'undeclared launch arguments: {sorted(used - declared)}'
    assert declared <= used, f'declared but unused: {sorted(declared - used)}'
    for name in launch.referenced_files():
        assert (INSTALLED_SHARE / 'config' / name).is_file(), f'{name} is not installed'
    assert (INSTALLED_SHARE / 'launch' / path.name).is_file(), 'launch file not installed'


@pytest.mark.graph
@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda path: path.name)
def test_launch_file_sets_only_declared_parameters(path, declared_parameters):
    for _, executable, parameters in LaunchFile(path).nodes():
        defaults = declared_parameters[executable]
        for name, value_type in parameters.items():
            assert name in defaults, f'{executable} declares no parameter {name!r}'
            if value_type is not None and not isinstance(defaults[name], bool):
                assert isinstance(defaults[name], PYTHON_TYPES[value_type]) or \
                    name == 'source', f'{executable}.{name}: {value_type} vs {defaults[name]!r}'


def _yaml_parameters(path, executable):
    document = yaml.safe_load(path.read_text())
    assert list(document) == [f'/**/{executable}'], 'one section, for the node in any namespace'
    return document[f'/**/{executable}']['ros__parameters']


def _flatten(parameters, prefix=''):
    flat = {}
    for name, value in parameters.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f'{prefix}{name}.'))
        else:
            flat[f'{prefix}{name}'] = value
    return flat


@pytest.mark.graph
@pytest.mark.parametrize('executable', sorted(CONFIG_FILES))
def test_config_file_lists_every_parameter_with_its_default(executable, declared_parameters):
    path = CONFIG_FILES[executable]
    assert (INSTALLED_SHARE / 'config' / path.name).is_file(), f'{path.name} is not installed'
    in_file = _flatten(_yaml_parameters(path, executable))
    defaults = declared_parameters[executable]
    assert set(in_file) == set(defaults), (
        f'missing: {sorted(set(defaults) - set(in_file))}, '
        f'unknown: {sorted(set(in_file) - set(defaults))}')
    for name, value in in_file.items():
        assert type(value) is type(defaults[name]) and value == pytest.approx(defaults[name]), \
            f'{name}: file {value!r}, node default {defaults[name]!r}'


@pytest.mark.graph
def test_parameter_file_applies_to_a_node_in_a_namespace(tmp_path):
    """The /**/camera_node key matches a namespaced node when rcl reads the file."""
    parameters = _yaml_parameters(CONFIG_FILES['camera_node'], 'camera_node')
    parameters.update(frame_id='from_yaml_file', source='/dev/video_missing_for_test')
    params_file = tmp_path / 'camera.yaml'
    params_file.write_text(yaml.safe_dump({'/**/camera_node': {'ros__parameters': parameters}}))
    domain = ros_domain_id()
    with GraphClient(domain) as client, \
            NodeProcess('camera_node', domain, tmp_path, namespace='front',
                        args=['--ros-args', '--params-file', str(params_file)]) as camera:
        values = client.get_parameters('/front/camera_node', ['frame_id', 'source'], timeout=30)
        assert camera.running, camera.log()
    assert values == {'frame_id': 'from_yaml_file', 'source': '/dev/video_missing_for_test'}


def _launch_is_installed():
    # Not find_spec('launch'): the source tree's launch/ folder is a namespace package.
    try:
        return importlib.util.find_spec('launch_ros.actions') is not None and \
            importlib.util.find_spec('launch.actions') is not None and \
            shutil.which('ros2') is not None
    except ImportError:
        return False


def _ros2_tools_wheelhouse():
    """Return the wheelhouse make setup installs launch from (scripts/setup.sh's ROS2_TOOLS)."""
    tools = os.environ.get('ROS2_TOOLS') or REPO_ROOT.parent / 'shared' / 'ros2-tools'
    return Path(tools) / 'wheelhouse'


@pytest.fixture
def launch_tools():
    """Skip when launch cannot be had (no ros2-tools wheelhouse); fail when it is not installed."""
    if _launch_is_installed():
        return
    wheelhouse = _ros2_tools_wheelhouse()
    if (wheelhouse / 'SHA256SUMS').is_file():
        pytest.fail(f'launch, launch_ros or the ros2 CLI is not installed although {wheelhouse} '
                    'holds them: run make setup')
    pytest.skip(f'launch, launch_ros and the ros2 CLI are not installed and there is no '
                f'{wheelhouse} to install them from (../shared/ros2-tools lies outside the '
                'repository; ROS2_TOOLS=DIR elsewhere, or source a system ROS 2)')


needs_launch = pytest.mark.usefixtures('launch_tools')

# The shipped profiles' shared-memory segment; Fast DDS's default is 512 KiB.
LARGE_SEGMENT = 16 * 1024 * 1024


def _astronaut_bgr():
    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


def _read_profile(pid):
    """Return the largest Fast DDS segment process ``pid`` maps (which profile it read)."""
    sizes = shm_segment_sizes(pid)
    return max(sizes) if sizes else 0


def _until(predicate, timeout, period=0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(period)


@needs_launch
@pytest.mark.graph
@pytest.mark.slow
def test_ros2_launch_video_cli_and_ctrl_c(tmp_path, model_path):
    """ros2 launch video.launch.py in a namespace, the ros2 CLI on it, then Ctrl-C.

    No profile variable comes from outside: the nodes read the profile that the launch file
    sets (FASTRTPS_* for Fast DDS 2.x, FASTDDS_* for 3), which the segment size shows.
    """
    video = write_video(tmp_path / 'astronaut.avi', _astronaut_bgr(), 20, 20.0)
    domain = ros_domain_id()
    arguments = {'video': video, 'loop': 'true', 'namespace': 'front', 'viewer_port': 0,
                 'model_path': model_path, 'fastdds_profile': LOCALHOST_PROFILE}
    launch = LaunchProcess('video.launch.py', arguments, domain, tmp_path, fastdds_profile=None)
    try:
        _run_cli_on_video_launch(launch, domain)
    finally:
        # ros2 topic / param start the CLI's graph daemon, which outlives them.
        ros2_cli(['daemon', 'stop'], domain)


def _run_cli_on_video_launch(launch, domain):
    with launch:
        echo = ros2_cli(['topic', 'echo', '--once', '/front/detections',
                         'mask_detection_msgs/msg/MaskDetectionArray'], domain, timeout=120)
        assert echo.returncode == 0 and 'image_width: 512' in echo.stdout, \
            launch.log() + echo.stdout + echo.stderr
        names = _until(lambda: {'/front/camera_node', '/front/detector_node'} <= set(
            ros2_cli(['node', 'list', '--no-daemon'], domain).stdout.split()), timeout=30)
        assert names, launch.log()
        rejected = ros2_cli(['param', 'set', '/front/detector_node', 'mask_threshold', '1.5'],
                            domain)
        assert 'Setting parameter failed' in rejected.stdout + rejected.stderr, \
            rejected.stdout + rejected.stderr
        # The reason: the node's validation or rclpy's range check, naming the parameter.
        reason = rejected.stdout + rejected.stderr
        assert 'mask_threshold' in reason and ('[0, 1]' in reason or 'range' in reason), reason
        kept = ros2_cli(['param', 'get', '/front/detector_node', 'mask_threshold'], domain)
        assert kept.stdout.split()[-1] == '0.5', kept.stdout + kept.stderr
        pids = launch.node_pids()
        # The live view starts by default (on a free port here): it stops cleanly too.
        assert {name.rsplit('-', 1)[0] for name in pids} == {
            'camera_node', 'detector_node', 'viewer_node'}, launch.log()
        for name, pid in pids.items():
            assert _read_profile(pid) >= LARGE_SEGMENT, \
                f"{name} did not read the launch file's Fast DDS profile: " \
                f'segments {shm_segment_sizes(pid)}'
        exit_code = launch.interrupt()
    log = launch.log()
    for name in pids:
        assert f'[INFO] [{name}]: process has finished cleanly' in log, log
    assert 'Traceback' not in log and 'KeyboardInterrupt' not in log, log
    assert exit_code == 0, log


@needs_launch
@pytest.mark.graph
@pytest.mark.slow
def test_ros2_launch_live_detector_only_on_another_topic(tmp_path, model_path):
    """use_camera:=false + image_topic + namespace + params_file, FASTRTPS_* set by the user."""
    params = _yaml_parameters(CONFIG_FILES['detector_node'], 'detector_node')
    params.update(mask_threshold=0.7, min_face_size=20)
    params_file = tmp_path / 'detector.yaml'
    params_file.write_text(yaml.safe_dump({'/**/detector_node': {'ros__parameters': params}}))
    domain = ros_domain_id()
    arguments = {'use_camera': 'false', 'image_topic': '/robot/camera/image', 'viewer': 'false',
                 'namespace': 'lobby', 'params_file': params_file, 'model_path': model_path}
    # A Jazzy user's shell: only the Fast DDS 2.x variable; launch moves it where Fast DDS reads.
    launch = LaunchProcess('live.launch.py', arguments, domain, tmp_path, fastdds_profile=None,
                           env={'FASTRTPS_DEFAULT_PROFILES_FILE': str(LOCALHOST_PROFILE)})
    with GraphClient(domain) as client, launch:
        arrays = client.collect(MaskDetectionArray, '/lobby/detections')
        image = image_codec.array_to_image_msg(_astronaut_bgr(), 'bgr8', msg=Image())
        publisher = client.publisher(Image, '/robot/camera/image', timeout=120)
        assert client.publish_until(publisher, image, lambda: arrays, timeout=60), launch.log()
        values = client.get_parameters('/lobby/detector_node',
                                       ['mask_threshold', 'min_face_size', 'qos_reliability'])
        pids = launch.node_pids()
        segment = _read_profile(pids['detector_node-1'])
    assert values == {'mask_threshold': 0.7, 'min_face_size': 20,
                      'qos_reliability': 'best_effort'}
    assert list(pids) == ['detector_node-1'], launch.log()
    assert segment >= LARGE_SEGMENT, launch.log()
    assert (arrays[0].image_width, arrays[0].image_height) == (512, 512)
    assert 'process has finished cleanly' in launch.log(), launch.log()


@needs_launch
@pytest.mark.graph
@pytest.mark.slow
def test_live_launch_processes_a_file_from_its_first_frame(tmp_path, model_path, monkeypatch):
    """launch.LaunchService in the main thread runs live.launch.py on a video file.

    The camera waits for the detector's subscription before playing a file, and the detector
    subscribes reliably.  Without the wait the detector misses what the camera plays before it
    subscribes: 2 to 11 s here (model loading), so of this 5 s file only the last frame was
    processed (measured with wait_for_subscribers 0).  The camera stamps frames at capture,
    one period apart: the stamps of the first and last arrays tell where processing started.
    Frames 1 to 4 (up to 2 s) have still been seen missing at the start on this loaded 2-core
    machine, where the detector's first inference is slow and it processes only the newest
    frame, and this test's own subscription can match the detector's publisher after the first
    array; hence half the file, not every frame (a detector-side log of each received frame
    showed all of them arriving in 5 of 5 runs at 5 fps).
    """
    import launch
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    frames, fps = 10, 2.0
    video = write_video(tmp_path / 'astronaut.avi', _astronaut_bgr(), frames, fps)
    domain = ros_domain_id()
    monkeypatch.setenv('ROS_DOMAIN_ID', str(domain))
    monkeypatch.delenv('_ROS_WHEELS_BOOTSTRAP_COMPLETE', raising=False)
    service = launch.LaunchService(noninteractive=True)
    service.include_launch_description(launch.LaunchDescription([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(INSTALLED_SHARE / 'launch' / 'live.launch.py')),
        launch_arguments={'source': str(video), 'model_path': str(model_path),
                          'namespace': 'first_frame_test',
                          'fastdds_profile': str(LOCALHOST_PROFILE)}.items())]))
    outcome = {}

    def watch():
        try:
            with GraphClient(domain) as client:
                arrays = client.collect(MaskDetectionArray, '/first_frame_test/detections')
                # Until every frame is processed, or 3 s pass without a new array.
                deadline = time.monotonic() + 90
                while len(arrays) < frames and time.monotonic() < deadline:
                    count = len(arrays)
                    client.spin_for(3.0)
                    if count and len(arrays) == count:
                        break
                outcome['arrays'] = list(arrays)
        except BaseException as error:     # reported by the test, in the main thread
            outcome['error'] = error
        finally:
            service.shutdown()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    exit_code = service.run()      # launch must run in the main thread
    watcher.join(30)
    if 'error' in outcome:
        raise outcome['error']
    arrays = outcome['arrays']
    assert exit_code == 0
    stamps = [array.header.stamp.sec + array.header.stamp.nanosec * 1e-9 for array in arrays]
    assert stamps == sorted(stamps) and 0 < len(stamps) <= frames, stamps
    spanned = round((stamps[-1] - stamps[0]) * fps) + 1
    assert spanned >= frames // 2, \
        f'the processed frames span {spanned} of {frames}: stamps {stamps}'
    assert all(len(array.detections) == 1 for array in arrays)


def _welcomes(greetings):
    return [msg.data for msg in greetings if msg.data.startswith(('Welcome', 'Hello'))]


@needs_launch
@pytest.mark.graph
@pytest.mark.parametrize('autostart', ['true', 'false'])
def test_video_launch_file_managed_detector_and_greeter(tmp_path, model_path, autostart):
    """managed:=true greeter:=true: the lifecycle node is activated by the launch file (or not)."""
    import launch
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from lifecycle_msgs.srv import GetState
    from std_msgs.msg import String

    frame = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    # Looped: the visitor arrives every 3.5 s (1 s in view, 2.5 s away: longer than the
    # detector's leave_timeout of 2 s), so a greeting comes again if the first one went out
    # before this test's subscription was discovered (the topic is volatile: CI saw that).
    video = write_frames(tmp_path / 'visits.avi', [frame] * 20 + [np.zeros_like(frame)] * 50,
                         20.0)
    domain = ros_domain_id()
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    service = launch.LaunchService()
    service.include_launch_description(launch.LaunchDescription([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(INSTALLED_SHARE / 'launch' / 'video.launch.py')),
        launch_arguments={'video': str(video), 'loop': 'true', 'model_path': str(model_path),
                          'face_detector': 'haar', 'managed': 'true', 'autostart': autostart,
                          'greeter': 'true'}.items())]))
    seen = {}

    def check():    # in a helper thread: LaunchService.run() must have the main thread
        try:
            with GraphClient(domain) as client:
                arrays = client.collect(MaskDetectionArray, 'detections')
                greetings = client.collect(String, 'greeting')
                state = client.node.create_client(GetState, '/detector_node/get_state')
                if not client.spin_until(state.service_is_ready, timeout=60):
                    return
                if autostart == 'true':
                    client.spin_until(lambda: arrays and _welcomes(greetings), timeout=90)
                else:
                    client.spin_for(5.0)
                future = state.call_async(GetState.Request())
                client.spin_until(future.done, timeout=10)
                seen.update(state=future.result().current_state.label, arrays=list(arrays),
                            greetings=[msg.data for msg in greetings])
        finally:
            service.shutdown()

    checker = threading.Thread(target=check, daemon=True)
    checker.start()
    service.run()
    checker.join(30)
    assert seen, 'no lifecycle state service /detector_node/get_state'
    if autostart == 'true':
        assert seen['state'] == 'active' and seen['arrays'], seen['state']
        # Hello (no mask) or Welcome (mask); a Goodbye may come first (joined mid-visit).
        assert any(text.startswith(('Welcome', 'Hello')) for text in seen['greetings']), seen
    else:
        assert seen['state'] == 'unconfigured' and not seen['arrays']
