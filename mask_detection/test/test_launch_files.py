"""Launch files and parameter files, checked against the installed nodes.

`launch` is not installable in this environment, so the launch files are read as Python
syntax trees: every node they start is an installed console script, every parameter they set
is one that node declares (asked from the running node over its parameter services), every
launch argument they use is declared, every file they reference is installed.  Where `launch`
is importable (a real ROS 2 install) they are also really launched.
"""
import ast
import importlib.util
import os
import threading

from conftest import ros_domain_id
import cv2
from graph_utils import GraphClient, INSTALL_LIB, NodeProcess, REPO_ROOT, write_video
import pytest
import skimage.data
import torch
import yaml

from mask_detection import classifier
from mask_detection_msgs.msg import MaskDetectionArray

PACKAGE_DIR = REPO_ROOT / 'mask_detection'
LAUNCH_FILES = sorted((PACKAGE_DIR / 'launch').glob('*.launch.py'))
CONFIG_FILES = {'camera_node': PACKAGE_DIR / 'config' / 'camera.yaml',
                'detector_node': PACKAGE_DIR / 'config' / 'detector.yaml',
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

    def nodes(self):
        """Return [(package, executable, {parameter: value_type name or None})]."""
        result = []
        for call in self.calls_to('Node'):
            keywords = {keyword.arg: keyword.value for keyword in call.keywords}
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


@pytest.fixture(scope='module')
def model_path(tmp_path_factory):
    shipped = classifier.default_model_path()
    if shipped.is_file():
        return shipped
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('model') / 'random_weights.pt'
    classifier.save_model_file(path, classifier.MaskNet(), {'note': 'random weights (test)'})
    return path


@pytest.fixture(scope='module')
def declared_parameters(tmp_path_factory, model_path):
    """Start both installed nodes; return {executable: {parameter: default value}}."""
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
            NodeProcess('viewer_node', domain, log_dir, params={'port': 0}) as viewer:
        for process in (camera, detector, viewer):
            names = [name for name in client.list_parameters(f'/{process.name}', timeout=30)
                     if name not in ignored]
            declared[process.name] = client.get_parameters(f'/{process.name}', names)
        assert camera.running and detector.running and viewer.running, \
            camera.log() + detector.log() + viewer.log()
    # The values set on the command line above are not the defaults.
    declared['camera_node'].update(source='0', reconnect_interval=1.0)
    declared['detector_node']['model_path'] = ''
    declared['viewer_node']['port'] = 8080
    return declared


def test_there_are_launch_files():
    assert {path.name for path in LAUNCH_FILES} >= {'live.launch.py', 'video.launch.py'}


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda path: path.name)
def test_launch_file_structure(path):
    launch = LaunchFile(path)
    functions = {node.name for node in launch.tree.body if isinstance(node, ast.FunctionDef)}
    assert 'generate_launch_description' in functions
    nodes = launch.nodes()
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
            importlib.util.find_spec('launch.actions') is not None
    except ImportError:
        return False


@pytest.mark.skipif(not _launch_is_installed(),
                    reason='the launch package is not installable in this environment '
                           '(ROS 2 from PyPI wheels); the launch files are checked statically')
@pytest.mark.graph
def test_video_launch_file_runs(tmp_path, model_path):
    """With a real ROS 2 install: launch video.launch.py and see detections."""
    import launch
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    frame = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    video = write_video(tmp_path / 'astronaut.avi', frame, 20, 20.0)
    domain = ros_domain_id()
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    service = launch.LaunchService()
    service.include_launch_description(launch.LaunchDescription([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(INSTALLED_SHARE / 'launch' / 'video.launch.py')),
        launch_arguments={'video': str(video), 'loop': 'true',
                          'model_path': str(model_path)}.items())]))
    runner = threading.Thread(target=service.run, daemon=True)
    runner.start()
    try:
        with GraphClient(domain) as client:
            arrays = client.collect(MaskDetectionArray, 'detections')
            assert client.spin_until(lambda: arrays, timeout=60)
    finally:
        service.shutdown()
        runner.join(30)
    assert (arrays[0].image_width, arrays[0].image_height) == (512, 512)
