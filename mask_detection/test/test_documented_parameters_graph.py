"""The parameters the running nodes declare, against README.md's tables and config/*.yaml.

The README once gave num_threads a default of 0 while the node declared 1.  Here the installed
nodes run on a DDS graph and are asked (ListParameters, GetParameters, DescribeParameters)
what they declare; every README parameter table (name, type, default, range when it gives
one, read-only) and every shipped parameter file (config/*.yaml: the defaults, key for key)
must say the same.
"""
import re

from conftest import ros_domain_id
from graph_utils import GraphClient, NodeProcess, REPO_ROOT, write_video
import numpy as np
import pytest
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import DescribeParameters
import yaml

README = REPO_ROOT / 'README.md'
CONFIG = REPO_ROOT / 'mask_detection' / 'config'
# Declared by rclpy itself, not by the nodes.
ROS_BUILTIN = {'use_sim_time', 'start_type_description_service'}
TYPES = {'bool': ParameterType.PARAMETER_BOOL, 'int': ParameterType.PARAMETER_INTEGER,
         'double': ParameterType.PARAMETER_DOUBLE, 'string': ParameterType.PARAMETER_STRING}
RANGE = re.compile(r'[\[(]\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*[\])]')


def readme_table(node):
    """Return {name: (type word, (low, high) or None, default text, read-only)} of a node."""
    lines = README.read_text().splitlines()
    start = lines.index(f'### {node} parameters')
    rows, in_table = {}, False
    for line in lines[start + 1:]:
        if line.startswith('#'):
            break
        if not line.startswith('|'):
            if in_table:
                break
            continue
        in_table = True
        cells = [cell.strip() for cell in line.strip('|').split('|')]
        if cells[0] == 'name' or set(cells[0]) <= {'-'}:
            continue
        names = re.findall(r'`([^`]+)`', cells[0])
        defaults = re.findall(r'`([^`]*)`', cells[2])
        if len(defaults) == 1:
            defaults *= len(names)
        assert len(defaults) == len(names), f'README {node}: defaults of {cells[0]}: {cells[2]}'
        match = RANGE.search(cells[1])
        bounds = (float(match.group(1)), float(match.group(2))) if match else None
        for name, default in zip(names, defaults):
            rows[name] = (cells[1].split()[0], bounds, default, 'Read-only' in cells[3])
    assert rows, f'no parameter table under "### {node} parameters" in README.md'
    return rows


def yaml_parameters(file_name, node):
    """Return {dotted name: value} of config/FILE for NODE (nested keys joined with '.')."""
    document = yaml.safe_load((CONFIG / file_name).read_text())
    values = {}

    def flatten(prefix, mapping):
        for key, value in mapping.items():
            if isinstance(value, dict):
                flatten(f'{prefix}{key}.', value)
            else:
                values[prefix + key] = value

    flatten('', document[f'/**/{node}']['ros__parameters'])
    return values


def declared(client, node):
    """Return {name: (value, ParameterDescriptor)} of a running node's own parameters."""
    names = sorted(set(client.list_parameters(node, timeout=30)) - ROS_BUILTIN)
    values = client.get_parameters(node, names, timeout=30)
    describe = client.node.create_client(DescribeParameters, f'{node}/describe_parameters')
    try:
        assert client.spin_until(describe.service_is_ready, timeout=30)
        future = describe.call_async(DescribeParameters.Request(names=names))
        assert client.spin_until(future.done, timeout=30)
        descriptors = future.result().descriptors
    finally:
        client.node.destroy_client(describe)
    return {name: (values[name], descriptor) for name, descriptor in zip(names, descriptors)}


def same_value(documented, actual):
    if isinstance(actual, bool) or isinstance(documented, bool):
        return documented is actual
    if isinstance(actual, (int, float)) and isinstance(documented, (int, float)):
        return float(documented) == float(actual)
    return str(documented) == str(actual)


@pytest.fixture(scope='module')
def node_parameters(tmp_path_factory):
    """Start camera_node, detector_node, viewer_node and greeter_node; return what they declare.

    Start-up overrides (a video file instead of camera 0, any free port) are listed with the
    result: their declared defaults cannot be read from a running node.
    """
    tmp_path = tmp_path_factory.mktemp('documented_parameters')
    video = write_video(tmp_path / 'grey.avi', np.full((120, 160, 3), 90, np.uint8), 5, 5.0)
    overrides = {'camera_node': {'source': str(video), 'loop': True},
                 'detector_node': {}, 'viewer_node': {'port': 0}, 'greeter_node': {}}
    domain = ros_domain_id()
    result = {}
    with GraphClient(domain) as client:
        processes = [NodeProcess(node, domain, tmp_path, params=params).start()
                     for node, params in overrides.items()]
        try:
            for (node, params), process in zip(overrides.items(), processes):
                assert client.spin_until(
                    lambda: node in client.node.get_node_names(), timeout=60), process.log()
                result[node] = (declared(client, f'/{node}'), params)
        finally:
            for process in processes:
                process.stop()
    return result


@pytest.mark.graph
@pytest.mark.parametrize('node', ['camera_node', 'detector_node', 'viewer_node'])
def test_readme_parameter_tables_match_the_running_nodes(node_parameters, node):
    parameters, overridden = node_parameters[node]
    documented = readme_table(node)
    assert set(documented) == set(parameters), (
        f'README lacks {sorted(set(parameters) - set(documented))}, documents undeclared '
        f'{sorted(set(documented) - set(parameters))}')
    problems = []
    for name, (type_word, bounds, default, read_only) in documented.items():
        value, descriptor = parameters[name]
        if TYPES.get(type_word) != descriptor.type:
            problems.append(f'{name}: README type {type_word}, declared type {descriptor.type}')
        if name not in overridden and not same_value(yaml.safe_load(default or "''"), value):
            problems.append(f'{name}: README default {default!r}, declared {value!r}')
        if bounds is not None:
            ranges = list(descriptor.integer_range) + list(descriptor.floating_point_range)
            declared_bounds = [(r.from_value, r.to_value) for r in ranges]
            if declared_bounds != [bounds]:
                problems.append(f'{name}: README range {bounds}, declared {declared_bounds}')
        if read_only != descriptor.read_only:
            problems.append(f'{name}: README read-only {read_only}, declared '
                            f'{descriptor.read_only}')
    assert not problems, '\n'.join(problems)


@pytest.mark.graph
@pytest.mark.parametrize('node, file_name', [
    ('camera_node', 'camera.yaml'), ('detector_node', 'detector.yaml'),
    ('viewer_node', 'viewer.yaml'), ('greeter_node', 'greeter.yaml')])
def test_shipped_parameter_files_hold_every_declared_default(node_parameters, node, file_name):
    parameters, overridden = node_parameters[node]
    in_file = yaml_parameters(file_name, node)
    assert set(in_file) == set(parameters), (
        f'{file_name} lacks {sorted(set(parameters) - set(in_file))}, sets undeclared '
        f'{sorted(set(in_file) - set(parameters))}')
    wrong = {name: (value, parameters[name][0]) for name, value in in_file.items()
             if name not in overridden and not same_value(value, parameters[name][0])}
    assert not wrong, f'{file_name} value vs declared default: {wrong}'
