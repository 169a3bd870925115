"""Where independent pieces of work run: one after another in this process, or as Ray tasks on a
local Ray instance or a cluster it joins.

Each task is a plain function of picklable arguments that writes its own files and returns a small
record; the executor adds the node it ran on and how long it took. On Ray a task whose worker
process dies is retried (`RETRIES`), and results come back in submission order while a progress
bar counts them as they finish.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from tqdm.auto import tqdm

IN_PROCESS = "none"  # --address value: run the tasks here, one after another
LOCAL = "local"  # --address value: start a Ray instance on this machine, sized to it
CONNECT_TIMEOUT_S = 5.0  # to reach a cluster's head before handing the address to Ray
RETRIES = 3  # times Ray reruns a task whose worker process died


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _timed(task: Callable[..., dict], args: tuple) -> dict:
    """Run one task and say where and for how long."""
    started = time.perf_counter()
    record = task(*args)
    return {**record, "node": _node(), "pid": os.getpid(), "wall_s": time.perf_counter() - started}


def _node() -> str:
    if ray_available():
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    return "local"


def run_tasks(
    task: Callable[..., dict], arguments: Sequence[tuple], address: str = LOCAL, progress: bool = True,
    description: str = "tasks", log: Callable[[str], Any] = print, embedded_llm: tuple[int, str | None] | None = None,
    until: Callable[[dict], bool] | None = None,
) -> list[dict]:
    """Each `task(*args)` record, in the order of `arguments`, with `node`, `pid` and `wall_s` added.

    `address`: `local` starts a Ray instance sized to this machine (or uses the one this process
    has already started); `auto` or HOST:PORT joins a running cluster; `none` runs in this process.
    Without Ray installed, `local` also runs here and says so. `embedded_llm`: the tasks use the
    embedded language model, one server per machine with these (slots, worker adapter file), started once for all.
    `until`: in this process, stop after the first record it holds true for (tasks on Ray all run).
    """
    if address == LOCAL and not ray_available():
        log("Ray is not installed (pip install 'llm-economist[cluster]'): running the tasks here, one after another")
        address = IN_PROCESS
    if address == IN_PROCESS:
        results = []
        with _servers(embedded_llm, on_ray=False):
            for args in tqdm(arguments, desc=description, disable=not progress, unit="task"):
                results.append(_timed(task, args))
                if until is not None and until(results[-1]):
                    break
        return results
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        if address != LOCAL:
            check_reachable(address)
        local = {"num_cpus": os.cpu_count(), "include_dashboard": False}
        try:
            ray.init(address=None if address == LOCAL else address, logging_level="ERROR", log_to_driver=False,
                     **(local if address == LOCAL else {}))
        except ConnectionError as err:  # `auto` with no cluster running
            raise ValueError(f"--address {address}: no Ray cluster found ({err}); start one with `ray start --head`, "
                             f"or use --address {LOCAL}") from None
    try:
        with _servers(embedded_llm, on_ray=True):
            remote = ray.remote(num_cpus=1, max_retries=RETRIES)(_timed)
            pending = {remote.remote(task, args): i for i, args in enumerate(arguments)}
            results: list[dict | None] = [None] * len(arguments)
            with tqdm(total=len(arguments), desc=description, disable=not progress, unit="task") as bar:
                while pending:
                    done, _ = ray.wait(list(pending), num_returns=1)
                    for ref in done:
                        results[pending.pop(ref)] = ray.get(ref)
                        bar.update(1)
            return results
    finally:
        if started_here:
            ray.shutdown()


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """A HOST:PORT that accepts no connection fails here, named, instead of Ray waiting on it for minutes."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return  # `auto` or a ray:// URL: Ray finds or refuses it itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise ValueError(f"--address {address}: nothing accepts connections there ({err}); is the Ray head running?") from None


def _servers(embedded_llm: tuple[int, str | None] | None, on_ray: bool) -> AbstractContextManager:
    if embedded_llm is None:
        return nullcontext()
    from .llm.server import shared_servers

    slots, adapter = embedded_llm
    return shared_servers(slots, on_ray, adapter)
