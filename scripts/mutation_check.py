#!/usr/bin/env python3
"""Plant known bugs one at a time in a scratch copy of the tree; each must fail a named test.

    scripts/mutation_check.py [--list] [--only a,c] [--no-baseline] [--keep]

The checkout itself is never modified: its files (tracked, and untracked ones git does not
ignore) are copied to a temporary folder, which gets its own colcon build (install/, for the
graph tests) on top of this checkout's Python environment (.envs/<env>/venv, linked, not
changed).  First the named tests run on the unmutated copy (the baseline: they must pass, else
a "caught" would mean nothing); then for each mutation the one source line is replaced, the
package rebuilt, its tests run, and the line restored.  A mutation is caught when at least one
of its tests fails; the script exits 1 if any is not caught (or a baseline test fails).

The list, with the reason each test catches its bug, is in docs/mutations.md; ``--list``
prints it from the table below.  Needs ``make setup`` first; graph and shared-data tests see
MASK_DETECTION_SHARED_DATA (default: ../shared/data next to this checkout).
"""
import argparse
from dataclasses import dataclass
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = 'mask_detection/mask_detection'
TESTS = 'mask_detection/test'


@dataclass(frozen=True)
class Mutation:
    """A planted bug: ``old`` (once in ``path``) becomes ``new``; ``tests`` must notice."""

    key: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple      # pytest arguments (node ids, or a file and -k EXPR)


MUTATIONS = (
    Mutation('a', 'label swap in the classifier output (P(mask) and P(no mask) exchanged)',
             f'{PACKAGE}/classifier.py',
             'return torch.softmax(logits.float() / self.temperature, dim=1).cpu().numpy()',
             'return torch.softmax(logits.float() / self.temperature, dim=1).cpu().numpy()'
             '[:, ::-1].copy()',
             (f'{TESTS}/test_labels_graph.py',)),
    Mutation('b', 'detector_node ignores tracking.enabled (tracking stays on)',
             f'{PACKAGE}/detector_node.py',
             "if tracking is not None and values['tracking.enabled']:",
             'if tracking is not None:',
             (f'{TESTS}/test_parameters_graph.py::'
              'test_tracking_enabled_switches_track_ids_and_visitor_events',)),
    Mutation('c', "the tracker's size-change gate removed",
             f'{PACKAGE}/tracking.py',
             'if abs(math.log(size_box / size_track)) > allowed_size + 1e-9:',
             'if False:',
             (f'{TESTS}/test_tracking.py::test_a_face_of_very_different_size_at_the_same_place'
              '_does_not_keep_the_track',)),
    Mutation('d', '/diagnostics hardware_id no longer set to the image frame_id',
             f'{PACKAGE}/detector_node.py',
             'status.hardware_id = frame_id',
             'pass',
             (f'{TESTS}/test_diagnostics_graph.py',)),
    Mutation('e', 'box colours swapped (mask red, no mask green)',
             f'{PACKAGE}/drawing.py',
             '_MASK: (0, 200, 0),        # green\n    _NO_MASK: (0, 0, 255),     # red',
             '_MASK: (0, 0, 255),        # green\n    _NO_MASK: (0, 200, 0),     # red',
             (f'{TESTS}/test_drawing.py', '-k', 'colour')),
    Mutation('f', 'header not copied from the source image to the detections',
             f'{PACKAGE}/detector_node.py',
             'msg = MaskDetectionArray(header=header,',
             'msg = MaskDetectionArray(header=Header(),',
             (f'{TESTS}/test_diagnostics_graph.py',)),
    Mutation('g', 'rgb8 channel order ignored (read as bgr8)',
             f'{PACKAGE}/image_codec.py',
             "'rgb8': _Encoding(3, 1, cv2.COLOR_RGB2BGR),",
             "'rgb8': _Encoding(3, 1, None),",
             (f'{TESTS}/test_image_codec.py', '-k', 'rgb8')),
    Mutation('h', 'README gives num_threads the default 0 (the node declares 1)',
             'README.md',
             '| `num_threads` | int [0, 1024] | `1` |',
             '| `num_threads` | int [0, 1024] | `0` |',
             (f'{TESTS}/test_documented_parameters_graph.py', '-k', 'readme')),
    Mutation('i', 'frames in flight published as they finish, not in arrival order',
             f'{PACKAGE}/detector_node.py',
             '        if number is not None:\n            self._wait_turn(number)',
             '        if False:\n            self._wait_turn(number)',
             (f'{TESTS}/test_detector_graph.py', '-k', 'in_flight')),
)

# What setup.sh unsets before building against ROS 2 from PyPI wheels.
ROS_VARIABLES = ('_ROS_WHEELS_BOOTSTRAP_COMPLETE', 'LD_LIBRARY_PATH', 'PYTHONPATH',
                 'AMENT_PREFIX_PATH', 'CMAKE_PREFIX_PATH', 'COLCON_PREFIX_PATH', 'ROS_DISTRO',
                 'VIRTUAL_ENV', 'FASTDDS_DEFAULT_PROFILES_FILE',
                 'FASTRTPS_DEFAULT_PROFILES_FILE', 'MASK_DETECTION_ROOT',
                 'MASK_DETECTION_ROS_ENV')


class CheckError(Exception):
    """The check cannot run (no environment, a mutation that no longer applies, ...)."""


def active_environment():
    """Return the name of the checkout's built environment (.envs/NAME), or fail clearly."""
    install = ROOT / 'install'
    if not install.is_symlink() or not (ROOT / '.venv' / 'bin' / 'python').exists():
        raise CheckError(f'no built environment in {ROOT}: run `make setup` first')
    return Path(os.readlink(install)).parent.name


def clean_environment(env_name):
    env = dict(os.environ)
    if not env_name.startswith('system-'):
        for name in ROS_VARIABLES:
            env.pop(name, None)
    env.setdefault('MASK_DETECTION_SHARED_DATA', str(ROOT.parent / 'shared' / 'data'))
    return env


def copy_tree(scratch):
    """Copy the checkout's tracked and not-ignored files to ``scratch``."""
    listing = subprocess.run(
        ['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=ROOT,
        check=True, capture_output=True).stdout.decode().split('\0')
    for relative in filter(None, listing):
        source = ROOT / relative
        if source.is_file():        # deleted but not yet committed files are skipped
            target = scratch / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def link_environment(scratch, env_name):
    """Give ``scratch`` this checkout's venv (linked) and an empty place for its own build."""
    env_dir = scratch / '.envs' / env_name
    env_dir.mkdir(parents=True)
    (env_dir / 'COLCON_IGNORE').touch()
    (env_dir / 'venv').symlink_to((ROOT / '.envs' / env_name / 'venv').resolve())
    (scratch / '.venv').symlink_to(f'.envs/{env_name}/venv')
    (scratch / 'install').symlink_to(f'.envs/{env_name}/install')


def colcon_build(scratch, env_name, env, packages=None):
    """Build mask_detection_msgs and mask_detection (or ``packages``) into scratch/install."""
    env_dir = scratch / '.envs' / env_name
    venv = env_dir / 'venv'
    select = f'--packages-select {" ".join(packages)}' if packages else ''
    script = (
        f'source "{venv}/bin/activate" && '
        + ('' if env_name.startswith('system-')
           else f'export AMENT_PREFIX_PATH="{venv}" CMAKE_PREFIX_PATH="{venv}" && ')
        + f'colcon --log-base "{env_dir}/log" build {select} '
        f'--base-paths "{scratch}/mask_detection_msgs" "{scratch}/mask_detection" '
        f'--build-base "{env_dir}/build" --install-base "{env_dir}/install" '
        f'--cmake-args -DPython3_EXECUTABLE="{venv}/bin/python" -DBUILD_TESTING=OFF')
    result = subprocess.run(['bash', '-c', script], cwd=scratch, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise CheckError(f'colcon build failed in {scratch}:\n{result.stdout[-3000:]}'
                         f'{result.stderr[-3000:]}')


def run_tests(scratch, env, args, report):
    """Run pytest on ``args`` in ``scratch``; return (outcome, detail)."""
    command = [str(scratch / 'scripts' / 'in_env.sh'), 'python', '-m', 'pytest', *args, '-q',
               '-p', 'no:cacheprovider', f'--junitxml={report}']
    result = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True)
    if not report.exists():
        return 'error', (result.stdout + result.stderr)[-2000:]
    suite = ElementTree.parse(report).getroot()
    suite = suite if suite.tag == 'testsuite' else suite.find('testsuite')
    counts = {key: int(suite.get(key, 0)) for key in ('tests', 'failures', 'errors',
                                                      'skipped')}
    failed = [case.get('name') for case in suite.iter('testcase')
              if case.find('failure') is not None or case.find('error') is not None]
    detail = (f"{counts['tests']} tests, {len(failed)} failed, {counts['skipped']} skipped"
              + (f" ({', '.join(failed)})" if failed else ''))
    if counts['tests'] == 0 or result.returncode not in (0, 1):
        return 'error', f'pytest exit {result.returncode}: {detail}\n' + (
            result.stdout + result.stderr)[-2000:]
    if failed:
        return 'failed', detail
    if counts['skipped']:
        return 'skipped', detail
    return 'passed', detail


def apply(scratch, mutation):
    """Plant the mutation; return the original text of its file (to restore it)."""
    path = scratch / mutation.path
    text = path.read_text()
    if text.count(mutation.old) != 1:
        raise CheckError(f'mutation {mutation.key}: {mutation.old!r} occurs '
                         f'{text.count(mutation.old)} times in {mutation.path}, not once: '
                         'update the table in scripts/mutation_check.py')
    path.write_text(text.replace(mutation.old, mutation.new))
    return text


def print_list():
    for mutation in MUTATIONS:
        print(f'({mutation.key}) {mutation.what}\n    {mutation.path}: {mutation.old!r}\n'
              f'    -> {mutation.new!r}\n    caught by: {" ".join(mutation.tests)}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--list', action='store_true', help='print the mutations and exit')
    parser.add_argument('--only', help='comma-separated keys of the mutations to check')
    parser.add_argument('--no-baseline', action='store_true',
                        help='skip the run of the tests on the unmutated copy')
    parser.add_argument('--keep', action='store_true', help='keep the scratch copy')
    args = parser.parse_args(argv)
    if args.list:
        print_list()
        return 0
    mutations = MUTATIONS
    if args.only:
        keys = args.only.split(',')
        unknown = set(keys) - {mutation.key for mutation in MUTATIONS}
        if unknown:
            parser.error(f'--only: no mutation {", ".join(sorted(unknown))}')
        mutations = [mutation for mutation in MUTATIONS if mutation.key in keys]

    # A SIGTERM (e.g. timeout) still removes the scratch copy (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        env_name = active_environment()
        env = clean_environment(env_name)
        scratch = Path(tempfile.mkdtemp(prefix='mutation_check_'))
        try:
            return check(scratch, env_name, env, mutations, not args.no_baseline)
        finally:
            if args.keep:
                print(f'scratch copy kept in {scratch}')
            else:
                shutil.rmtree(scratch, ignore_errors=True)
    except CheckError as error:
        print(f'mutation_check: {error}', file=sys.stderr)
        return 2


def check(scratch, env_name, env, mutations, baseline):
    started = time.monotonic()
    copy_tree(scratch)
    link_environment(scratch, env_name)
    print(f'scratch copy {scratch}: building ...', flush=True)
    colcon_build(scratch, env_name, env)
    reports = scratch / '.mutation_reports'
    reports.mkdir()
    ok = True
    if baseline:
        seen = set()
        for mutation in mutations:
            if mutation.tests in seen:
                continue
            seen.add(mutation.tests)
            outcome, detail = run_tests(scratch, env, mutation.tests,
                                        reports / f'baseline-{mutation.key}.xml')
            print(f'baseline ({mutation.key}): {outcome}: {detail}', flush=True)
            ok &= outcome == 'passed'
        if not ok:
            print('baseline: the named tests must pass on the unmutated tree first')
            return 1
    for mutation in mutations:
        original = apply(scratch, mutation)
        try:
            colcon_build(scratch, env_name, env, ['mask_detection'])
            outcome, detail = run_tests(scratch, env, mutation.tests,
                                        reports / f'mutation-{mutation.key}.xml')
        finally:
            (scratch / mutation.path).write_text(original)
        caught = outcome == 'failed'
        ok &= caught
        print(f"({mutation.key}) {mutation.what}: {'caught' if caught else 'NOT caught'} "
              f'[{outcome}: {detail}]', flush=True)
    print(f'{len(mutations)} mutation(s) in {time.monotonic() - started:.0f} s: '
          + ('all caught' if ok else 'NOT all caught'))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
