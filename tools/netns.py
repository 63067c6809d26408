"""Two "hosts" on one machine: network namespaces joined by a veth pair (needs root).

    with HostPair() as hosts:               # namespaces mdh<pid>a / mdh<pid>b, 10.200.0.1 / .2
        hosts.limit_rate('20mbit')          # tc tbf on both ends of the link
        command = hosts.wrap('a', ['camera_node', ...])
        ...
        hosts.tx_bytes('a')                 # bytes sent by host a over the link

Each host also gets, for the processes started with ``wrap``, its own /dev/shm (a tmpfs shared
by that host's processes only) and its own /etc/machine-id (bind mounts in the private mount
namespace of ``ip netns exec``): otherwise Fast DDS would find its peers "on the
same host" and could move the data through shared memory instead of over the link.  Only
addresses of these two test hosts are used; the namespaces (and with them the veth pair) are
deleted on exit, also after a failure.
"""
import os
import shlex
import shutil
import subprocess
import tempfile
import uuid

SUBNET_PREFIX = '10.200.0.'
ADDRESSES = {'a': SUBNET_PREFIX + '1', 'b': SUBNET_PREFIX + '2'}


class NamespaceError(RuntimeError):
    """Network namespaces cannot be made here (not root, no iproute2, no kernel support)."""


def _run(*args, check=True):
    result = subprocess.run(args, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise NamespaceError(f'`{" ".join(args)}` failed ({result.returncode}): '
                             f'{(result.stderr or result.stdout).strip()}')
    return result


def unavailable_reason():
    """Return why network namespaces cannot be made here, or '' when they can."""
    if os.geteuid() != 0:
        return 'network namespaces need root (run the tests as root to include them)'
    for tool in ('ip', 'tc'):
        if shutil.which(tool) is None:
            return f"'{tool}' (iproute2) is not installed: apt-get install -y iproute2"
    probe = f'mdprobe{os.getpid()}'
    result = _run('ip', 'netns', 'add', probe, check=False)
    if result.returncode != 0:
        return f'cannot create a network namespace: {result.stderr.strip()}'
    _run('ip', 'netns', 'delete', probe, check=False)
    return ''


class HostPair:
    """Hosts 'a' (10.200.0.1) and 'b' (10.200.0.2) on one veth link, in their own namespaces."""

    def __init__(self, tag=None):
        tag = tag or f'{os.getpid() % 100000}{uuid.uuid4().hex[:3]}'
        self.namespaces = {'a': f'mdh{tag}a', 'b': f'mdh{tag}b'}
        self.interfaces = {'a': f'mdv{tag}a', 'b': f'mdv{tag}b'}    # <= 15 characters
        self._files = tempfile.mkdtemp(prefix='mask_hosts_')
        self._created = []
        self._mounts = []

    def __enter__(self):
        try:
            self.create()
        except BaseException:
            self.delete()
            raise
        return self

    def __exit__(self, *exc_info):
        self.delete()

    def create(self):
        for side, namespace in self.namespaces.items():
            _run('ip', 'netns', 'add', namespace)
            self._created.append(namespace)
            # A machine id per host (Fast DDS tells hosts apart by it, see the module doc).
            with open(os.path.join(self._files, f'machine-id-{side}'), 'w') as file:
                file.write(uuid.uuid4().hex + '\n')
            shm = os.path.join(self._files, f'shm-{side}')
            os.mkdir(shm)
            _run('mount', '-t', 'tmpfs', '-o', 'size=512m,mode=1777', 'tmpfs', shm)
            self._mounts.append(shm)
        a, b = self.interfaces['a'], self.interfaces['b']
        _run('ip', 'link', 'add', a, 'netns', self.namespaces['a'], 'type', 'veth',
             'peer', 'name', b, 'netns', self.namespaces['b'])
        for side, namespace in self.namespaces.items():
            self.ip(side, 'addr', 'add', ADDRESSES[side] + '/24', 'dev', self.interfaces[side])
            self.ip(side, 'link', 'set', 'lo', 'up')
            self.ip(side, 'link', 'set', self.interfaces[side], 'up')
            # A host without a default route has no route for multicast: DDS discovery
            # (239.255.0.1) goes out on the link, as it would through a real host's default.
            self.ip(side, 'route', 'add', '224.0.0.0/4', 'dev', self.interfaces[side])

    def delete(self):
        for namespace in reversed(self._created):
            _run('ip', 'netns', 'delete', namespace, check=False)
        self._created = []
        for mount in self._mounts:
            _run('umount', '-l', mount, check=False)
        self._mounts = []
        shutil.rmtree(self._files, ignore_errors=True)

    def ip(self, side, *args):
        """Run ``ip ARGS`` inside host ``side``."""
        return _run('ip', '-n', self.namespaces[side], *args)

    def address(self, side):
        return ADDRESSES[side]

    def limit_rate(self, rate, burst='16kb', latency='100ms'):
        """Shape both directions of the link to ``rate`` (tc tbf syntax, e.g. '20mbit')."""
        for side in self.namespaces:
            _run('ip', 'netns', 'exec', self.namespaces[side], 'tc', 'qdisc', 'replace',
                 'dev', self.interfaces[side], 'root', 'tbf', 'rate', rate, 'burst', burst,
                 'latency', latency)

    def block_multicast(self):
        """Drop every multicast packet sent on the link (like many Wi-Fi networks)."""
        for side, namespace in self.namespaces.items():
            tc = ('ip', 'netns', 'exec', namespace, 'tc')
            device = self.interfaces[side]
            _run(*tc, 'qdisc', 'add', 'dev', device, 'clsact')
            # A classic BPF filter in direct-action mode, as the drop action module
            # (act_gact) is often not available: if the first byte of the IPv4 destination
            # (frame offset 14 + 16) is 224-239, return TC_ACT_SHOT (2), else "no verdict".
            _run(*tc, 'filter', 'add', 'dev', device, 'egress', 'bpf', 'da', 'bytecode',
                 '6,48 0 0 30,84 0 0 240,21 0 1 224,6 0 0 2,6 0 0 4294967295,'
                 '6 0 0 4294967295')

    def tx_bytes(self, side):
        """Return the bytes host ``side`` has sent over the link so far."""
        output = _run('ip', 'netns', 'exec', self.namespaces[side], 'cat',
                      f'/sys/class/net/{self.interfaces[side]}/statistics/tx_bytes').stdout
        return int(output.strip())

    def wrap(self, side, command):
        """Return ``command`` (a list) run inside host ``side``, as a list.

        ``ip netns exec`` gives the process a private mount namespace; in it this host's
        /dev/shm and machine id are mounted before the command is exec'd (same PID).
        """
        machine_id = os.path.join(self._files, f'machine-id-{side}')
        shm = os.path.join(self._files, f'shm-{side}')
        setup = (f'mount --bind {shlex.quote(shm)} /dev/shm && '
                 f'mount --bind {shlex.quote(machine_id)} /etc/machine-id && exec "$@"')
        return ['ip', 'netns', 'exec', self.namespaces[side], 'sh', '-c', setup, 'sh',
                *[str(part) for part in command]]
