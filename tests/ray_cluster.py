"""A real two-node Ray cluster on this machine for tests: `ray start --head` and a second
`ray start --address`, each one CPU, bound to 127.0.0.1, run in the foreground (`--block`) so that
stopping the two processes the test holds stops everything they started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT_S = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayCluster:
    """`with RayCluster() as cluster:` gives `cluster.address` with two one-CPU nodes alive."""

    def __init__(self) -> None:
        self.address = f"127.0.0.1:{_free_port()}"
        self.processes: list[subprocess.Popen] = []
        # Token authentication switches itself on once this machine holds a token (~/.ray/auth_token,
        # written by any earlier local Ray instance); a loopback test cluster runs without it either way.
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
        self.temp = tempfile.mkdtemp(prefix="ray_")

    def _start(self, *args: str) -> None:
        """One node; every port it would otherwise take by default is a free one, so clusters of
        tests running side by side never meet."""
        log = open(Path(self.temp) / f"node{len(self.processes)}.log", "w")
        ports = [f"--{name}={_free_port()}" for name in (
            "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port", "runtime-env-agent-port")]
        self.processes.append(subprocess.Popen(
            [RAY, "start", "--block", "--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats", *ports, *args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def _nodes_alive(self) -> int:
        import ray

        return sum(1 for node in ray.nodes() if node["Alive"])

    def __enter__(self) -> "RayCluster":
        import ray

        port = self.address.split(":")[1]
        self._start("--head", "--port", port, "--include-dashboard", "false", "--temp-dir", self.temp)
        deadline = time.monotonic() + START_TIMEOUT_S
        while subprocess.run([RAY, "status", "--address", self.address], env=self.env, capture_output=True).returncode:
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"the Ray head at {self.address} did not start; see {self.temp}")
            time.sleep(1)
        self._start("--address", self.address)
        ray.init(address=self.address, logging_level="ERROR", log_to_driver=False)
        try:
            while self._nodes_alive() < 2:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the second Ray node did not join {self.address}; see {self.temp}")
                time.sleep(1)
        finally:
            ray.shutdown()
        return self

    def descendants(self) -> list:
        """Every process the two nodes started (raylets, workers), for tests that kill one."""
        import psutil

        found = []
        for process in self.processes:
            try:
                found += psutil.Process(process.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                continue
        return found

    def __exit__(self, *exc) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # its own session: only what it started
                process.wait()
