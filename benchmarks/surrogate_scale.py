"""One surrogate period for 1e4, 1e5 and 1e6 census agents; prints one JSON object.

For each size, in its own process (so its peak RSS is its own): sample the census population,
build its social graph (timed), compute the surrogate's persona features and first-period
context under the 2024 US schedule (``surrogate.features``), load the shipped surrogate (the
default ``workers.kind: surrogate`` population), then one warm-up and ``--repeats`` timed
forward steps under ``torch.inference_mode``. Reported per size: the median step, agent-steps per second, CPU
seconds per step (all threads; well below threads x step means the cores were shared), the
process's peak RSS (everything above included) and the peak RSS sampled during the forwards.

    python benchmarks/surrogate_scale.py [--sizes 10000,100000] [--repeats 5] [--threads 2]
        [--device cuda] [--llm-agents 20]

The roofline of a period: the floating-point operations and the bytes an agent's step needs at
least (`roofline`: its inputs, its outputs, its neighbours' keys and values, the keys and values
it writes), beside the device's copy bandwidth and matrix-multiply rate measured in the same
run, give the shortest a period could take (``*_roofline_step_s``, the larger of the two
bounds) and how close the step gets (``*_share_of_roofline``).

In the same run, ``--llm-agents`` census workers (0 skips it) each make one sequential call to
the embedded language-model server, as a loop over agents would (``llm_throughput.decide``);
``ratio_vs_llm_call_per_agent`` is the surrogate's agent-steps per second at the largest size
over those decisions per second.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time

import torch

SIZES = (10_000, 100_000, 1_000_000)
SEED = 0


def rss_gb(field: str = "VmRSS") -> float:
    """Current (VmRSS) or peak (VmHWM) resident set of this process, from /proc/self/status."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 2**20  # kB
    return float("nan")


def max_rss_gb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
    return kb / (1024**3 if sys.platform == "darwin" else 1024**2)


class RssSampler:
    """Highest VmRSS seen by a background thread polling /proc/self/status every few ms."""

    def __init__(self, every_s: float = 0.005) -> None:
        self.every_s, self.peak_gb = every_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_gb = max(self.peak_gb, rss_gb())
            self._stop.wait(self.every_s)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_gb = max(self.peak_gb, rss_gb())


def surrogate_inputs(population, levels: dict, bins: torch.Tensor) -> dict:
    """The model's inputs for the first period of ``population`` under the 2024 US schedule."""
    from llm_economist.mechanisms import make_mechanism
    from llm_economist.surrogate import features

    persona_num, persona_cat = features.persona_features(population.table, levels)
    mechanism = make_mechanism("us_federal_2024")
    policy = mechanism.compile(mechanism.initial())
    wage = population.wage(dtype=torch.float64)
    context = features.context_features(wage, policy, torch.zeros(1, dtype=torch.float64), None, None, bins)
    return {"persona_num": persona_num, "persona_cat": persona_cat, "context": context.float()}


def roofline(config, width: int) -> tuple[int, int]:
    """(FLOPs, bytes) one agent's period needs at least in float32: every matrix product and
    element-wise step of the model once, and every input, output and neighbour row moved once."""
    d, de, h, k = config.d_model, config.d_expression, config.n_heads, width
    token = 2 * config.n_context * d + 2 * d * d + 2 * d  # context and memory into the token, the wage in force
    block = (2 * d * 2 * d + 2 * de * d + 2 * d * d  # keys and values, the expression's value, the query
             + k * (4 * d + 2 * d + 6 * h)  # scores with the tie key, the weighted values, softmax
             + 2 * d * d + 2 * (2 * d * 4 * d) + 4 * d * 10 + 2 * 8 * d)  # out, MLP with its GELU, two layer norms
    heads = 2 * d * (config.n_hour_bins + config.n_channels + de) + 8 * d + 2 * (2 * 3 * d * d) + 3 * d * 10  # heads, GRU
    flops = token + config.n_layers * block + heads
    floats = (d + config.n_context + d + de  # persona, context, memory, expression in
              + config.n_layers * (2 * 2 * d + k * 2 * d)  # keys and values out and back, the neighbours' rows
              + config.n_hour_bins + config.n_channels + de + d)  # what the period returns
    return flops, 4 * floats + config.n_layers * k * 9  # and the graph row: an index and a tie type a slot


def machine_rates(device: torch.device) -> tuple[float, float]:
    """(bytes/s of a large copy, FLOP/s of an (n x 16) by (16 x 64) float32 product) on ``device``,
    best of several; n is 1M on the CPU and 16M on a GPU, so the GPU's caches do not hold it."""
    n = 1_000_000 if device.type == "cpu" else 16_000_000
    a = torch.ones(2**26 if device.type == "cpu" else 2**28, dtype=torch.float32, device=device)
    b = torch.empty_like(a)
    x, w = torch.randn(n, 16, device=device), torch.randn(16, 64, device=device)
    out = torch.empty(n, 64, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    copy, product = [], []
    for _ in range(5):
        sync()
        s0 = time.perf_counter()
        b.copy_(a)
        sync()
        s1 = time.perf_counter()
        torch.mm(x, w, out=out)
        sync()
        s2 = time.perf_counter()
        copy.append(s1 - s0)
        product.append(s2 - s1)
    return 2 * a.numel() * 4 / min(copy), 2 * n * 16 * 64 / min(product)


def measure(n: int, repeats: int, device_name: str, threads: int | None, model_path: str | None) -> dict:
    """One size, in this process."""
    if threads:
        torch.set_num_threads(threads)
    from llm_economist.personas import sample_population
    from llm_economist.personas.graph import population_graph
    from llm_economist.surrogate import SurrogatePopulation
    from llm_economist.workers.surrogate import shipped_model_path

    model = SurrogatePopulation.load(model_path or shipped_model_path())

    device = torch.device(device_name)
    key = f"n{n}"
    t0 = time.perf_counter()
    population = sample_population(n, SEED)
    t1 = time.perf_counter()
    graph = population_graph(population, SEED)
    t2 = time.perf_counter()
    inputs = surrogate_inputs(population, model.meta["levels"], torch.tensor(model.meta["bins"], dtype=torch.float64))
    t3 = time.perf_counter()
    del population

    model = model.to(device).eval()
    graph = graph.to(device)
    inputs = {name: tensor.to(device) for name, tensor in inputs.items()}
    inputs["neighbour_expression_input"] = model.init_expression(n, device)
    inputs["memory"] = model.init_memory(n, device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def timed(forward) -> tuple[list[float], list[float]]:
        steps, cpu = [], []
        forward()  # warm-up
        sync()
        for _ in range(repeats):
            c0, s0 = time.process_time(), time.perf_counter()
            forward()
            sync()
            steps.append(time.perf_counter() - s0)
            cpu.append(time.process_time() - c0)
        return steps, cpu

    with torch.inference_mode(), RssSampler(0.5) as rss:
        # Reference: every period is a full forward, persona embedding and graph rows included.
        reference, _ = timed(lambda: model(graph=graph, **inputs))
        # Prepared: what does not change between periods is built once (timed), then each period is a step.
        p0 = time.perf_counter()
        population = model.prepare(inputs["persona_num"], inputs["persona_cat"], graph)
        prepare_s = time.perf_counter() - p0
        steps, cpu = timed(lambda: model.step(population, inputs["context"], inputs["neighbour_expression_input"], inputs["memory"]))
    step = statistics.median(steps)
    flops, moved = roofline(model.config, graph.width)
    result = {
        f"{key}_population_s": round(t1 - t0, 3),
        f"{key}_graph_build_s": round(t2 - t1, 3),
        f"{key}_features_s": round(t3 - t2, 3),
        f"{key}_graph_width": graph.width,
        f"{key}_mean_degree": round(graph.degree.double().mean().item(), 2),
        f"{key}_reference_step_s": round(statistics.median(reference), 4),
        f"{key}_prepare_s": round(prepare_s, 4),
        f"{key}_step_s": round(step, 4),
        f"{key}_speedup_vs_reference": round(statistics.median(reference) / step, 2),
        f"{key}_step_min_s": round(min(steps), 4),
        f"{key}_step_cpu_s": round(statistics.median(cpu), 4),
        f"{key}_agent_steps_per_s": round(n / step),
        f"{key}_flops_per_agent": flops,
        f"{key}_min_bytes_per_agent": moved,
        f"{key}_peak_rss_gb": round(max_rss_gb(), 3),
        f"{key}_forward_peak_rss_gb": round(rss.peak_gb, 3),
    }
    if device.type == "cuda":
        result[f"{key}_cuda_peak_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    config = model.config
    result["config"] = {"d_model": config.d_model, "n_layers": config.n_layers, "n_heads": config.n_heads, "chunk_size": config.chunk_size}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(n) for n in SIZES), help="comma-separated agent counts")
    parser.add_argument("--repeats", type=int, default=5, help="timed forward steps per size (median reported)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--model", default=None, help="surrogate model file (default: the shipped one)")
    parser.add_argument("--llm-agents", type=int, default=20, help="agents for the one-call-per-agent language-model peer (0: skip)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)  # one size, in this process
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no GPU")

    if args.child is not None:
        print(json.dumps(measure(args.child, args.repeats, args.device, args.threads, args.model)))
        return

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    result: dict = {"device": args.device, "threads": args.threads or torch.get_num_threads(), "load_avg_1m_start": round(os.getloadavg()[0], 2)}
    for n in sizes:
        command = [sys.executable, __file__, "--child", str(n), "--repeats", str(args.repeats), "--device", args.device]
        command += ["--threads", str(args.threads)] if args.threads else []
        command += ["--model", args.model] if args.model else []
        out = subprocess.run(command, capture_output=True, text=True)
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            raise SystemExit(f"size {n}: child process failed with exit code {out.returncode}")
        measured = json.loads(out.stdout.strip().splitlines()[-1])
        config = measured.pop("config")
        result.update({name: config[name] for name in ("d_model", "n_layers", "n_heads", "chunk_size")})
        result.update(measured)
    # The device's rates, after the sizes: a child's peak memory would include this process's.
    if args.threads:
        torch.set_num_threads(args.threads)
    bandwidth, flop_rate = machine_rates(torch.device(args.device))
    result.update({"copy_bandwidth_bytes_per_s": round(bandwidth), "matmul_flops_per_s": round(flop_rate)})
    for n in sizes:
        key = f"n{n}"
        bound = n * max(result[f"{key}_min_bytes_per_agent"] / bandwidth, result[f"{key}_flops_per_agent"] / flop_rate)
        result.update({f"{key}_roofline_step_s": round(bound, 4), f"{key}_share_of_roofline": round(bound / result[f"{key}_step_s"], 3)})
    result["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    if args.llm_agents > 0:
        from llm_throughput import decide  # the sibling benchmark's one-call-per-agent loop

        llm_rate, _, _ = decide(args.llm_agents, concurrency=1, archetypes=0)
        result[f"n{args.llm_agents}_llm_sequential_decisions_per_s"] = round(llm_rate, 3)
        result["ratio_vs_llm_call_per_agent"] = round(result[f"n{max(sizes)}_agent_steps_per_s"] / llm_rate)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
