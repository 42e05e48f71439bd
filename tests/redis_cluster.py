"""A Redis Cluster of three masters for the tests, from Debian's `redis-server` on free ports in
a folder of its own, and the mark that runs a test on the single server and on that cluster.

The cluster keeps nothing on disk (no append-only file, no snapshots) and no replicas: the tests
check where keys land and that Fleet's commands are ones a cluster takes, not failover."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from redis import Redis

from fleet.redis_client import RedisAddress
from tests.support import free_port, wait_port, wait_until

MASTERS = 3

# Runs the test twice: on the single server's test database, and on the cluster (the
# `redis_address` fixture, which `redis`, `client` and the rest follow).
SINGLE_AND_CLUSTER = pytest.mark.parametrize("redis_address", ["single", "cluster"], indirect=True)


def redis_env(address: RedisAddress) -> dict[str, str]:
    """The environment that points a Fleet process at `address`."""
    return {
        "FLEET_REDIS_URL": address.url,
        "FLEET_REDIS_CLUSTER": "true" if address.cluster else "false",
    }


class RedisClusterServers:
    """Three `redis-server` masters joined by `redis-cli --cluster create`, the slots split
    evenly between them."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="fleet-redis-cluster-"))
        ports: set[int] = set()
        while len(ports) < 2 * MASTERS:  # a client port and a cluster bus port for each
            ports.add(free_port())
        chosen = sorted(ports)
        self.ports, self.bus_ports = chosen[:MASTERS], chosen[MASTERS:]
        self.servers: list[subprocess.Popen[bytes]] = []

    @property
    def address(self) -> RedisAddress:
        return RedisAddress(f"redis://127.0.0.1:{self.ports[0]}/0", cluster=True)

    def start(self) -> None:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if server is None or cli is None:
            raise RuntimeError("redis-server and redis-cli (Debian's redis-server) are needed")
        for port, bus in zip(self.ports, self.bus_ports, strict=True):
            options = {
                "port": port,
                "cluster-port": bus,
                "bind": "127.0.0.1",
                "cluster-enabled": "yes",
                "cluster-config-file": f"nodes-{port}.conf",
                "dir": self.dir,
                "appendonly": "no",
                "save": "",
                "logfile": self.dir / f"{port}.log",
            }
            args = [part for name, value in options.items() for part in (f"--{name}", str(value))]
            self.servers.append(
                subprocess.Popen(
                    [server, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
        for port in self.ports:
            wait_port(port, self.servers, self.dir / f"{port}.log")
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
        )
        for port in self.ports:
            with Redis(port=port) as node:
                wait_until(
                    lambda node=node: node.cluster("INFO")["cluster_state"] == "ok",
                    f"the cluster to be ok as seen from port {port}",
                    timeout=60,
                    every=0.1,
                )

    def stop(self) -> None:
        for server in self.servers:
            server.terminate()
        for server in self.servers:
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
