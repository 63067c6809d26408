"""Every Python command documented in README.md, BENCHMARKS.md and the model card runs as written.

The commands are read from the documents themselves (code blocks and inline code), so a command
that is edited, added or renamed there is checked here without touching this file:

- every ``scripts/in_env.sh python -m MODULE ARGS`` (and ``python FILE.py ARGS``) has its real
  documented arguments parsed by the module's own ``parse_args`` (placeholders such as OUT, DIR,
  FILE or PREVIOUS_MODEL.pt become temporary paths or real files, ``../shared/data`` becomes
  MASK_DETECTION_SHARED_DATA);
- one documented command of each kind runs for real, shrunk to its smallest size by the
  overrides in SMALL_RUNS;
- a documented command that is neither run (SMALL_RUNS) nor explicitly left to the argparse
  check (ARGPARSE_ONLY, with the reason) fails test_every_documented_command_is_covered.
"""
import importlib
import importlib.util
import itertools
import json
import os
from pathlib import Path
import re
import shlex
import subprocess

from conftest import ROOT, SHARED_DATA
import pytest

DOCUMENTS = ('README.md', 'BENCHMARKS.md', 'mask_detection/models/MODEL_CARD.md')
SHIPPED_MODEL = ROOT / 'mask_detection' / 'models' / 'mask_classifier.pt'
DEV_SET = 'facemask-detection-dev'

# A command: optional `scripts/in_env.sh`, then python and what it runs.
COMMAND = re.compile(r'(?P<env>scripts/in_env\.sh\s+)?(?<![\w/.-])python3?\s+'
                     r'(?P<what>-m\s+[\w.]+|-c\s|[\w/.-]+\.py\b)')
# Written in the documents as a pattern, not as a command to run.
TEMPLATES = {'FOLDER.MODULE'}
# `python -m PACKAGE` runs PACKAGE/__main__.py, which calls this module's main.
MAIN_OF_PACKAGE = {'demo': 'demo.runner'}


class Command:
    """One documented command: where it is written and its words, as a shell would split them."""

    def __init__(self, document, line, text):
        self.document, self.line, self.text = document, line, text
        self.words = shlex.split(text)
        start = self.words.index(next(w for w in self.words if re.fullmatch(r'python3?', w)))
        self.env = start > 0 and self.words[start - 1] == 'scripts/in_env.sh'
        rest = self.words[start + 1:]
        if rest[0] == '-m':
            self.module, self.script, self.args = rest[1], None, rest[2:]
        elif rest[0] == '-c':
            self.module, self.script, self.args = None, None, rest[1:]
        else:
            self.module, self.script, self.args = None, rest[0], rest[1:]

    @property
    def kind(self):
        """Module (or script) and sub-command: the key of SMALL_RUNS and ARGPARSE_ONLY."""
        if self.module is None and self.script is None:
            return 'python -c'
        name = self.module or self.script
        if self.module == 'pytest':
            return name
        if self.args and re.fullmatch(r'[a-z][\w-]*', self.args[0]):
            return f'{name} {self.args[0]}'
        return name

    @property
    def where(self):
        return f'{self.document}:{self.line}'

    def __repr__(self):
        return f'{self.where}: {self.text}'


def _code_lines(text):
    """Yield (line number, text) of the code: fenced and 4-space-indented blocks, lines joined.

    A line ending in a backslash continues on the next one, as in a shell.
    """
    lines = text.splitlines()
    fenced = False
    joined, start = '', None
    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith('```'):
            fenced = not fenced
            continue
        if not (fenced or line.startswith('    ')):
            continue
        if start is None:
            start = number
        if line.rstrip().endswith('\\'):
            joined += line.rstrip()[:-1] + ' '
            continue
        yield start, joined + line
        joined, start = '', None


def _inline_spans(text):
    """Yield (line number, text) of the inline code spans (one may wrap a line)."""
    outside = []
    fenced = False
    for line in text.splitlines():
        fence = line.lstrip().startswith('```')
        fenced ^= fence
        outside.append('' if fence or fenced or line.startswith('    ') else line)
    prose = '\n'.join(outside)
    for match in re.finditer(r'`([^`]+)`', prose):
        yield prose.count('\n', 0, match.start()) + 1, ' '.join(match.group(1).split())


def _shell_variables(text):
    """Return the NAME=VALUE assignments of the code blocks (`D=../shared/data`), expanded."""
    variables = {}
    for _, line in _code_lines(text):
        for name, value in re.findall(r'(?:^|;\s*)([A-Z]\w*)=(\S+?)(?=;|\s|$)', line.strip()):
            variables[name] = _expand(value, variables)
    return variables


def _expand(text, variables):
    return re.sub(r'\$(\w+)', lambda m: variables.get(m.group(1), m.group(0)), text)


def _alternatives(text):
    """Return the command once per choice of each `a|b` word, without `[`, `]` and `...`."""
    words = [w for w in text.replace('[', ' ').replace(']', ' ').split() if w != '...']
    choices = [w.split('|') if '|' in w and not w.startswith(('"', "'")) else [w]
               for w in words]
    return [' '.join(combination) for combination in itertools.product(*choices)]


def documented_commands():
    """Return every Python command written in the three documents."""
    commands = []
    for document in DOCUMENTS:
        text = (ROOT / document).read_text()
        variables = _shell_variables(text)
        for number, line in itertools.chain(_code_lines(text), _inline_spans(text)):
            for match in COMMAND.finditer(line):
                if match.group('what').split()[-1] in TEMPLATES:
                    continue
                command = line[match.start():]
                # A code line's own comment ends the command (unless the command is in it).
                command = re.split(r'\s+#\s', command)[0].strip()
                command = _expand(command, variables)
                for variant in _alternatives(command) if '-c' not in command.split()[:3] \
                        else [command]:
                    commands.append(Command(document, number, variant))
    return commands


COMMANDS = documented_commands()

# One documented command of each kind runs for real (the one with the most arguments), with
# the flags of 'set' set to their smallest size (added when not documented) and those of 'drop'
# removed.  'needs' names a folder of ../shared/data the run needs; 'graph' marks runs that
# start ROS 2 processes.  TMP/ is a temporary folder, SHARED/ is ../shared/data.
SMALL_RUNS = {
    'demo': dict(set={'--duration': '3', '--output-dir': 'TMP/demo', '--no-viewer': ''},
                 drop={'--help', '--speak', '--detector-param'}, graph=True),
    'benchmarks.benchmark pipeline': dict(set={'--frames': '2', '--rounds': '1',
                                               '--threads': '1', '--json': 'TMP/pipeline.json'},
                                          drop={'--variant'}),
    'benchmarks.benchmark classifier': dict(set={'--frames': '2', '--rounds': '1',
                                                 '--batch-sizes': '1 2',
                                                 '--torch-threads': '1'}),
    'benchmarks.benchmark scales': dict(set={'--data': 'SMALL_VOC', '--scales': '0.5',
                                             '--max-sides': '320'}, needs=DEV_SET),
    'benchmarks.benchmark ros': dict(set={'--rates': '30', '--duration': '2', '--warmup': '1',
                                          '--annotated': 'no', '--json': 'TMP/ros.json'},
                                     drop={'--param'}, graph=True),
    'benchmarks.detector_benchmark': dict(set={'--data': 'SMALL_VOC', '--repeats': '2',
                                               '--scales': '0.5', '--refine': '0 0.2'},
                                          drop={'--no-dataset'}, needs=DEV_SET),
    'benchmarks.viewer_benchmark': dict(set={'--clients': '1', '--duration': '2',
                                             '--warmup': '1', '--log-dir': 'TMP/viewer'},
                                        graph=True),
    'training.evaluate detect': dict(set={'--max-images': '3', '--json': 'TMP/detect.json'},
                                     needs=DEV_SET),
    'training.evaluate classify': dict(set={'--max-images': '2', '--json': 'TMP/classify.json',
                                            '--data': 'SHARED/real-world-masks/collins_webcam'},
                                       drop={'--images'}, needs='real-world-masks'),
    'training.heldout': dict(set={'--out': 'TMP/heldout_split.json'}, needs='.'),
    'training.robustness': dict(set={'--data': 'SHARED/real-world-masks/collins_webcam',
                                     '--val-fraction': '0.1', '--json': 'TMP/robustness.json'},
                                needs='real-world-masks'),
    'benchmarks/memory_soak.py': dict(set={'--duration': '3', '--interval': '1', '--warmup': '1',
                                           '--json': 'TMP/soak.json'}, graph=True),
    'training.track_eval': dict(set={'--clips': '1', '--frames': '12', '--rates': '30,15,5',
                                     '--cache': 'TMP/clips.json'},
                                needs=DEV_SET),
    # Documented test runs are collected, not run: the tests run in the suite themselves.
    'pytest': dict(set={'--collect-only': '', '-q': ''}, drop={'-s'}),
    'python -c': dict(),  # the model card's metadata one-liner, as written
}

# Documented commands only checked by the argparse test, and why they are not run here.
ARGPARSE_ONLY = {
    'training.train': 'trains a model: many minutes even on a few faces per folder',
    'training.evaluate heldout': 'detects the faces of all 2420 held-out images and draws masks '
                                 'on 697 of them: many minutes, and it has no size flag',
    'benchmarks.multihost': 'needs root (network namespaces, tc) and runs 20 s per transport',
    'benchmarks.benchmark soak': 'the same run as benchmarks/memory_soak.py, which runs here '
                                 '(shrunk to 3 s)',
}


# Flags whose value is a file or folder the command reads: it must exist as written.
INPUT_FLAGS = {'--data', '--voc', '--data-root', '--images', '--split', '--heldout', '--model',
               '--init', '--frame'}
# Flags that take no value: what follows them is not theirs when they are dropped.
FLAGS_WITHOUT_VALUE = {'-s', '--help', '--speak', '--no-dataset', '--sweep', '--no-viewer'}


def _tmp_substitute(word, tmp_path):
    return word.replace('TMP/', f'{tmp_path}/').replace('SHARED/', f'{SHARED_DATA}/')


def _concrete_args(command, tmp_path):
    """Return the documented arguments with placeholders made real (temporary or real files)."""
    args, previous = [], None
    for word in command.args:
        if word.startswith('../shared/data'):
            word = str(SHARED_DATA) + word[len('../shared/data'):]
        elif word in ('PREVIOUS_MODEL.pt', 'PREVIOUS.pt', 'M') or \
                (word == 'FILE' and previous in ('--model', '--init')):
            word = str(SHIPPED_MODEL)
        elif word == 'OUT':
            word = str(tmp_path / 'out.json')
        elif word == 'FILE':
            word = str(tmp_path / ('out.png' if 'png' in (previous or '') else 'out.pt'))
        elif word == 'DIR' and previous == '--data':
            word = str(SHARED_DATA / 'real-world-masks' / 'collins_webcam')
        elif word in ('DIR', 'DIR_OF_30_DEV_PHOTOS') and previous == '--images':
            word = str(SHARED_DATA / DEV_SET / 'images')
        elif word == 'DIR':
            word = str(tmp_path / 'dir')
        elif word == 'T':
            word = '1'
        elif word == 'SCALE':
            word = '0.75'
        elif word == 'NAME:=VALUE':
            word = 'mask_threshold:=0.5'
        elif word.startswith('training/runs/'):  # what the command writes: not in a clone
            word = str(tmp_path / word)
        elif word.endswith('.json') and previous in ('--json', '--cache'):
            word = str(tmp_path / word)
        args.append(word)
        previous = word if word.startswith('-') else previous
    return args


def _shared_paths(command, args):
    """Return the paths in ../shared/data the command reads: in its arguments or defaults."""
    paths = [Path(word) for word in args if word.startswith(str(SHARED_DATA))]
    if command.kind == 'benchmarks.detector_benchmark' and '--no-dataset' not in args \
            and '--data' not in args:
        paths.append(SHARED_DATA / DEV_SET)  # its default --data
    if command.kind in ('training.evaluate heldout', 'training.heldout') \
            and '--data-root' not in args:
        paths.append(SHARED_DATA)  # their default --data-root
    return paths


def _skip_without(paths):
    for path in paths:
        if not path.exists():
            pytest.skip(f'needs {path} (../shared/data, not part of the repository; set '
                        'MASK_DETECTION_SHARED_DATA)')


def _parser_module(command):
    if command.script is not None:
        spec = importlib.util.spec_from_file_location('documented_script', ROOT / command.script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(MAIN_OF_PACKAGE.get(command.module, command.module))


def test_the_documents_have_commands():
    kinds = {command.kind for command in COMMANDS}
    # A broken extraction would make every other test here vacuous.
    assert len(COMMANDS) >= 40, COMMANDS
    assert {'training.train', 'training.evaluate detect', 'benchmarks.benchmark pipeline',
            'benchmarks.multihost', 'demo'} <= kinds, kinds


@pytest.mark.parametrize('command', COMMANDS, ids=lambda c: f'{c.where} {c.kind}')
def test_runs_in_the_project_environment(command):
    """A bare `python` runs outside the venv and the sourced workspace: imports fail."""
    assert command.env, (f'{command.where}: "{command.text}" must start with '
                         'scripts/in_env.sh (the environment built by make setup)')


@pytest.mark.parametrize('command', [c for c in COMMANDS if c.module not in (None, 'pytest')
                                     or c.script], ids=lambda c: f'{c.where} {c.kind}')
def test_documented_arguments_parse(command, tmp_path, capsys, monkeypatch):
    """The module exists and its own parser accepts the documented arguments as written."""
    monkeypatch.chdir(ROOT)  # the documents' relative paths are relative to the checkout
    if command.script is not None:
        assert (ROOT / command.script).is_file(), f'{command}: no such file'
    argv = _concrete_args(command, tmp_path)
    _skip_without(_shared_paths(command, argv))
    missing = [value for flag, value in zip(argv, argv[1:])
               if flag in INPUT_FLAGS and not (ROOT / value).exists()]
    assert not missing, f'{command}: no such file or folder: {missing}'
    module = _parser_module(command)
    assert hasattr(module, 'parse_args'), f'{command}: {module.__name__} has no parse_args(argv)'
    try:
        module.parse_args(argv)
    except SystemExit as exit_:
        error = capsys.readouterr().err
        assert exit_.code == 0 and '--help' in argv, \
            f'{command}\n  parsed as {argv}\n  {error.strip()}'


@pytest.mark.slow
@pytest.mark.parametrize('command', [c for c in COMMANDS if c.module == 'pytest'],
                         ids=lambda c: f'{c.where} {c.kind}')
def test_documented_pytest_commands_select_tests(command, tmp_path):
    """The documented test file exists and the documented -k selects at least one test."""
    _run_for_real(command, tmp_path)


def _key_of_small_run(command):
    if command.kind in SMALL_RUNS:
        return command.kind
    if command.module in SMALL_RUNS:
        return command.module
    return None


def _representatives():
    """Return the documented command of each SMALL_RUNS kind with the most arguments."""
    chosen = {}
    for command in COMMANDS:
        key = _key_of_small_run(command)
        if key is None or key == 'pytest':
            continue
        if key not in chosen or len(command.args) > len(chosen[key].args):
            chosen[key] = command
    return chosen


def _shrunk(command, tmp_path):
    """Return the command's words with SMALL_RUNS' overrides, ready for subprocess."""
    spec = SMALL_RUNS[_key_of_small_run(command)]
    args = _concrete_args(command, tmp_path)
    overrides = {flag: _tmp_substitute(value, tmp_path)
                 for flag, value in spec.get('set', {}).items()}
    removed = set(spec.get('drop', ())) | set(overrides)
    kept, skipping = [], False
    for word in args:
        if word.startswith('-') and not re.fullmatch(r'-\d.*', word):
            skipping = word in removed
            if skipping and word in FLAGS_WITHOUT_VALUE:
                skipping = False
                continue
        if not skipping:
            kept.append(word)
    for flag, value in overrides.items():
        kept += [flag, *value.split()]
    if command.script is None and command.module is not None:
        return ['scripts/in_env.sh', 'python', '-m', command.module, *kept]
    if command.script is not None:
        return ['scripts/in_env.sh', 'python', command.script, *kept]
    return ['scripts/in_env.sh', 'python', '-c', *command.args]


def _small_voc(tmp_path):
    """Make a VOC folder of the dev set's first three photos (links to the real files)."""
    source = SHARED_DATA / DEV_SET
    folder = tmp_path / 'small_voc'
    (folder / 'annotations').mkdir(parents=True)
    (folder / 'images').mkdir()
    for xml in sorted((source / 'annotations').glob('*.xml'))[:3]:
        (folder / 'annotations' / xml.name).symlink_to(xml)
        image = source / 'images' / (xml.stem + '.jpg')
        (folder / 'images' / image.name).symlink_to(image)
    return folder


def _run_for_real(command, tmp_path):
    key = _key_of_small_run(command)
    spec = SMALL_RUNS[key]
    words = _shrunk(command, tmp_path)
    _skip_without(_shared_paths(command, words)
                  + ([SHARED_DATA / spec['needs']] if 'needs' in spec else []))
    if 'SMALL_VOC' in words:
        words[words.index('SMALL_VOC')] = str(_small_voc(tmp_path))
    env = dict(os.environ, MPLBACKEND='Agg')
    env.pop('PYTEST_CURRENT_TEST', None)
    result = subprocess.run([w for w in words if w != ''], cwd=ROOT, env=env, text=True,
                            capture_output=True, timeout=240)
    output = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == 0, f'{command}\n  ran as {shlex.join(words)}\n{output}'
    return result, words


REPRESENTATIVES = _representatives()


@pytest.mark.parametrize(
    'key', [pytest.param(key, marks=[pytest.mark.slow, pytest.mark.graph]
                         if SMALL_RUNS[key].get('graph') else [pytest.mark.slow])
            for key in SMALL_RUNS if key != 'pytest'])
def test_documented_command_runs_at_its_smallest_size(key, tmp_path):
    assert key in REPRESENTATIVES, f'SMALL_RUNS[{key!r}]: no such command is documented'
    command = REPRESENTATIVES[key]
    result, words = _run_for_real(command, tmp_path)
    # What the command says it writes is there and readable.
    for flag in ('--json', '--out'):
        if flag in words:
            written = Path(words[words.index(flag) + 1])
            assert written.is_file(), f'{shlex.join(words)} did not write {written}'
            if written.suffix == '.json':
                assert json.loads(written.read_text()), written
    if key == 'training.heldout':
        # "rebuilds it identically from the data" (model card)
        assert json.loads(Path(words[words.index('--out') + 1]).read_text()) == \
            json.loads((ROOT / 'training' / 'heldout_split.json').read_text())


def test_every_documented_command_is_covered():
    """A documented command must run here for real or be listed, with a reason, as not run."""
    uncovered = [c for c in COMMANDS if _key_of_small_run(c) is None
                 and c.kind not in ARGPARSE_ONLY and (c.module or c.script) not in ARGPARSE_ONLY]
    assert not uncovered, ('documented commands neither run (SMALL_RUNS) nor argparse-only '
                           '(ARGPARSE_ONLY, with the reason):\n'
                           + '\n'.join(map(repr, uncovered)))
    stale = [key for key in ARGPARSE_ONLY
             if not any(key in (c.kind, c.module, c.script) for c in COMMANDS)]
    assert not stale, f'ARGPARSE_ONLY lists commands no document has: {stale}'


def _written(pattern):
    """Yield (document, line, match) of a pattern in the code and inline code of the documents."""
    for document in DOCUMENTS:
        text = (ROOT / document).read_text()
        for number, line in itertools.chain(_code_lines(text), _inline_spans(text)):
            for match in re.finditer(pattern, line):
                yield f'{document}:{number}', match


MAKE_COMMANDS = [(where, m.group(1), m.group(2).replace('[', ' ').replace(']', ' ').split())
                 for where, m in _written(r'(?<![\w-])make\s+([a-z][\w-]*)'
                                          r'((?:\s+\[?[A-Z_]+=[^\s\];]*\]?)*)')]
LAUNCH_COMMANDS = [(where, m.group(1), re.findall(r'(\w+):=', m.group(2)))
                   for where, m in _written(r'ros2 launch mask_detection (\S+\.launch\.py)'
                                            r'((?:\s+\w+:=\S*)*)')]


def test_documented_make_targets_exist():
    assert len(MAKE_COMMANDS) >= 8, MAKE_COMMANDS
    for where, target, variables in MAKE_COMMANDS:
        # -n: print what the target would run (its recipes and prerequisites), run nothing.
        result = subprocess.run(['make', '-n', target, *variables], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f'{where}: make {target}: {result.stderr}'


@pytest.mark.slow
def test_documented_launch_arguments_exist():
    assert len(LAUNCH_COMMANDS) >= 8, LAUNCH_COMMANDS
    declared = {}
    for launch_file in sorted({name for _, name, _ in LAUNCH_COMMANDS}):
        result = subprocess.run(['scripts/in_env.sh', 'ros2', 'launch', 'mask_detection',
                                 launch_file, '--show-args'], cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
        if 'ros2: command not found' in result.stderr or \
                "unknown command 'launch'" in result.stderr:
            pytest.skip('ros2 launch is unavailable (no ../shared/ros2-tools wheelhouse at '
                        f'make setup): {result.stderr.strip()[-200:]}')
        assert result.returncode == 0, f'{launch_file} --show-args:\n{result.stderr}'
        declared[launch_file] = set(re.findall(r"^\s+'(\w+)':", result.stdout, re.M))
        assert declared[launch_file], result.stdout
    for where, launch_file, arguments in LAUNCH_COMMANDS:
        unknown = set(arguments) - declared[launch_file]
        assert not unknown, f'{where}: {launch_file} has no argument(s) {sorted(unknown)}'


def test_documented_installed_files_exist():
    """Node executables and share/ files the documents name are what make setup installs."""
    install = ROOT / 'install' / 'mask_detection'
    if not install.is_dir():
        pytest.skip(f'{install} is not built (make setup)')
    named = [(where, m.group(0)) for where, m in _written(r'install/mask_detection/[\w/.-]+')]
    named += [(where, f'install/mask_detection/lib/mask_detection/{m.group(1)}')
              for where, m in _written(r'ros2 run mask_detection (\w+)')]
    named += [(where, f'install/mask_detection/share/mask_detection/{m.group(1)}')
              for where, m in _written(r'(?<![\w/])(config/[\w.]+\.(?:yaml|xml))')]
    assert len(named) >= 10, named
    missing = [(where, path) for where, path in named if not (ROOT / path).exists()]
    assert not missing, f'documented but not installed: {missing}'


def test_documented_demo_args_parse():
    """`make demo DEMO_ARGS=...` hands these to python -m demo: its parser must take them."""
    from demo.runner import parse_args
    values = [(where, m.group(1)) for where, m in _written(r'DEMO_ARGS=(\S+)')]
    assert values, 'the README documents DEMO_ARGS'
    for where, value in values:
        try:
            parse_args(shlex.split(value))
        except SystemExit:
            pytest.fail(f'{where}: DEMO_ARGS={value} is not an option of python -m demo')


def test_documented_git_objects_exist():
    """`git show REV:PATH > FILE` (the previous model) names a file in the git history."""
    objects = [(where, m.group(1)) for where, m in _written(r'git show (\w+:[\w/.-]+)')]
    assert objects, 'the model card documents how to get the previous model'
    if not (ROOT / '.git').exists():
        pytest.skip('not a git checkout')
    for where, name in objects:
        result = subprocess.run(['git', 'cat-file', '-e', name], cwd=ROOT, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, f'{where}: git has no {name} ({result.stderr.strip()})'
