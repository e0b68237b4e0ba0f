"""The local Ray a job starts listens on the loopback interface only, and keeps the driver's
SIGTERM handler (a cancel must stay a cancel)."""

from __future__ import annotations

import ipaddress
import signal
import socket

import pytest

from mixopt.runners.ray_runner import RayRunner

pytestmark = pytest.mark.slow


def _psutil():
    """psutil, as Ray bundles it (importing Ray puts it on the path)."""
    import importlib

    import ray  # noqa: F401

    return importlib.import_module("psutil")


def _machine_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (where a network peer would connect)."""
    psutil = _psutil()
    found = []
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if (
                address.family == socket.AF_INET
                and not ipaddress.ip_address(address.address).is_loopback
            ):
                found.append(address.address)
    return found


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _listening(processes: list) -> list[tuple[str, str, int]]:
    psutil = _psutil()

    out = []
    for process in processes:
        try:
            for connection in process.net_connections(kind="inet"):
                if connection.status == psutil.CONN_LISTEN:
                    out.append((process.name(), connection.laddr.ip, connection.laddr.port))
        except psutil.Error:
            continue
    return out


def test_a_local_ray_listens_on_loopback_only(tmp_path):
    psutil = _psutil()
    import ray

    def cancel(signum, frame):  # what `mixopt run` installs
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, cancel)
    runner = RayRunner(num_cpus=1)
    try:
        runner.start()
        assert signal.getsignal(signal.SIGTERM) is cancel  # Ray's own handler was put back
        assert ray.util.get_node_ip_address() == "127.0.0.1"
        ray.get(ray.remote(lambda: 1).remote())  # a worker process is up too
        me = psutil.Process()
        sockets = _listening([me, *me.children(recursive=True)])
        assert len({name for name, _, _ in sockets}) >= 3, sockets  # gcs, raylet, workers...
        exposed = [s for s in sockets if not _loopback(s[1])]
        assert not exposed, f"listening beyond loopback: {exposed}"
        # the attack: connect to Ray's ports on the machine's network address
        for address in _machine_addresses():
            for _, _, port in sockets:
                with socket.socket() as sock:
                    sock.settimeout(2.0)
                    assert sock.connect_ex((address, port)) != 0, (address, port)
    finally:
        runner.shutdown()
        signal.signal(signal.SIGTERM, previous)
