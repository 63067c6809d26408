"""package.xml, setup.py and the installed workspace agree."""
import ast
from pathlib import Path
import sys
from xml.etree import ElementTree

from catkin_pkg.package import parse_package
import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / 'mask_detection'
INSTALL = ROOT / 'install' / 'mask_detection'
SHARE = INSTALL / 'share' / 'mask_detection'

# Python import name -> the rosdep key that provides it.  torch is a pip
# dependency (requirements/python.txt) documented in the README; so are onnxruntime and onnx.
ROSDEP_KEY = {
    'rclpy': 'rclpy', 'sensor_msgs': 'sensor_msgs', 'std_msgs': 'std_msgs',
    'diagnostic_msgs': 'diagnostic_msgs', 'mask_detection_msgs': 'mask_detection_msgs',
    'builtin_interfaces': 'builtin_interfaces', 'rcl_interfaces': 'rcl_interfaces',
    'ament_index_python': 'ament_index_python', 'launch': 'launch', 'launch_ros': 'launch_ros',
    'cv2': 'python3-opencv', 'numpy': 'python3-numpy', 'yaml': 'python3-yaml',
    'skimage': 'python3-skimage', 'matplotlib': 'python3-matplotlib', 'scipy': 'python3-scipy',
}
PIP_ONLY = {'torch', 'onnx', 'onnxruntime'}


def _package(name):
    return parse_package(str(ROOT / name / 'package.xml'))


def _exec_deps(package):
    return {d.name for d in package.exec_depends + package.build_export_depends
            + getattr(package, 'build_depends', [])} | {d.name for d in package.run_depends}


def _setup_kwargs():
    """Return setup()'s keyword arguments, read from setup.py without running it."""
    tree = ast.parse((PKG / 'setup.py').read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, 'id', '') == 'setup')
    return {k.arg: k.value for k in call.keywords}


def _console_scripts():
    entry_points = ast.literal_eval(_setup_kwargs()['entry_points'])
    scripts = {}
    for line in entry_points['console_scripts']:
        name, target = (part.strip() for part in line.split('='))
        scripts[name] = target
    return scripts


def test_both_packages_are_format_3_with_license_and_build_type():
    for name, build_type in (('mask_detection', 'ament_python'),
                             ('mask_detection_msgs', 'ament_cmake')):
        package = _package(name)
        assert package.package_format == 3
        assert package.name == name
        assert package.licenses == ['Apache-2.0']
        assert package.get_build_type() == build_type
        package.validate()


def test_msgs_package_declares_generators_and_group():
    package = _package('mask_detection_msgs')
    assert {'ament_cmake', 'rosidl_default_generators'} <= {
        d.name for d in package.buildtool_depends}
    assert 'rosidl_default_runtime' in {d.name for d in package.exec_depends}
    assert 'rosidl_interface_packages' in {g.name for g in package.member_of_groups}


def test_every_import_of_the_module_is_a_declared_dependency():
    declared = _exec_deps(_package('mask_detection'))
    stdlib = set(sys.stdlib_module_names)
    missing = {}
    for source in sorted((PKG / 'mask_detection').glob('*.py')):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for top in {n.split('.')[0] for n in names}:
                if top in stdlib or top in PIP_ONLY or top == 'mask_detection':
                    continue
                key = ROSDEP_KEY.get(top)
                if key is None or key not in declared:
                    missing.setdefault(top, []).append(source.name)
    assert not missing, f'imports not declared in mask_detection/package.xml: {missing}'


def test_torch_is_documented_as_a_pip_dependency():
    for name in sorted(PIP_ONLY):
        assert f'\n{name}==' in (ROOT / 'requirements' / 'python.txt').read_text()
        assert name in (PKG / 'package.xml').read_text()


@pytest.fixture(scope='module')
def installed():
    # make setup builds install/ from this repository: its absence is a failure, not a skip.
    assert SHARE.is_dir(), f'{SHARE} does not exist: run `make setup` (colcon build) first'
    return INSTALL


def test_ament_index_marker_is_installed(installed):
    assert (PKG / 'resource' / 'mask_detection').is_file()
    assert (installed / 'share' / 'ament_index' / 'resource_index' / 'packages'
            / 'mask_detection').is_file()
    assert (SHARE / 'package.xml').read_text() == (PKG / 'package.xml').read_text()


def test_every_console_script_is_installed_and_importable(installed):
    scripts = _console_scripts()
    assert {'camera_node', 'detector_node'} <= set(scripts)
    for name, target in scripts.items():
        assert (installed / 'lib' / 'mask_detection' / name).is_file(), f'{name} not installed'
        module, _, function = target.partition(':')
        path = PKG / (module.replace('.', '/') + '.py')
        assert path.is_file(), f'console script {name} points to missing {path}'
        functions = {n.name for n in ast.parse(path.read_text()).body
                     if isinstance(n, ast.FunctionDef)}
        assert function in functions, f'{path} has no function {function}() for {name}'


@pytest.mark.parametrize('folder, patterns', [
    ('launch', ['*.launch.py']), ('config', ['*.yaml', '*.xml']), ('models', ['*.pt', '*.md'])])
def test_share_files_are_installed(installed, folder, patterns):
    sources = sorted(p.name for pattern in patterns for p in (PKG / folder).glob(pattern))
    installed_files = sorted(p.name for p in (SHARE / folder).glob('*')) \
        if (SHARE / folder).is_dir() else []
    assert sources == installed_files, \
        f'share/mask_detection/{folder} is out of date: run `make setup`'
    for name in sources:
        assert (SHARE / folder / name).read_bytes() == (PKG / folder / name).read_bytes()


@pytest.mark.parametrize('name, loopback_only', [
    ('fastdds_large_shm.xml', False), ('fastdds_large_shm_localhost.xml', True)])
def test_fast_dds_profiles_are_installed_and_hold_a_large_segment(installed, name,
                                                                  loopback_only):
    namespace = {'dds': 'http://www.eprosima.com'}
    root = ElementTree.parse(SHARE / 'config' / name).getroot()
    segment = root.find('.//dds:transport_descriptor/dds:segment_size', namespace)
    # One 640x480 bgr8 image is 921,600 bytes: the segment must hold several.
    assert int(segment.text) >= 16 * 1024 * 1024
    interfaces = root.iterfind('.//dds:allowlist/dds:interface', namespace)
    allowlist = [interface.get('name') for interface in interfaces]
    assert allowlist == (['lo'] if loopback_only else [])


def _package_and_install(root):
    """Build a tiny source package and its installed copy (as colcon lays it out) in ``root``."""
    files = {'mask_detection/node.py': 'print("node")\n',
             'launch/live.launch.py': '# launch\n',
             'config/detector.yaml': 'a: 1\n',
             'config/fastdds.xml': '<profiles/>\n',
             'models/model.pt': 'weights',
             'package.xml': '<package/>\n'}
    installed_dirs = {'mask_detection': 'lib/python3.11/site-packages/mask_detection',
                      'launch': 'share/mask_detection/launch',
                      'config': 'share/mask_detection/config',
                      'models': 'share/mask_detection/models',
                      '.': 'share/mask_detection'}
    source, install = root / 'src', root / 'install'
    for name, text in files.items():
        folder, _, base = name.rpartition('/')
        for path in (source / name, install / installed_dirs[folder or '.'] / base):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return source, install


def test_stale_install_check_names_changed_and_missing_files(tmp_path):
    from conftest import stale_install_files
    source, install = _package_and_install(tmp_path)
    assert stale_install_files(source, install) == ()
    (source / 'mask_detection' / 'node.py').write_text('print("edited")\n')   # same size
    (source / 'config' / 'detector.yaml').write_text('a: 2, b: 3\n')
    (source / 'launch' / 'new.launch.py').write_text('# new\n')
    stale = stale_install_files(source, install)
    assert [line.split(' ')[0] for line in stale] == [
        'mask_detection/mask_detection/node.py', 'mask_detection/launch/new.launch.py',
        'mask_detection/config/detector.yaml']
    assert 'not installed' in stale[1]
    assert stale_install_files(source, tmp_path / 'nowhere') == (
        f'{tmp_path / "nowhere"} does not exist',)


def test_this_checkout_is_installed_as_it_is():
    from conftest import stale_install_files
    assert stale_install_files() == (), 'install/ is stale: run make setup'
