"""PPO planner against Saez and the grid on the three-bracket economy of rational workers.

One command reruns it:  python experiments/ppo/train_ppo.py
Every parameter is below; results go to OUT (summary.json, report.md, a seed directory each).
"""

from llm_economist.studies.comparison import run_comparison
from llm_economist.planner_factory import load_config
from llm_economist.reporting import write_report
from llm_economist.reporting.report import console_table

OUT = "runs/ppo_study"
SEEDS = 3
AGENTS = 1000
TIMESTEPS = 4096  # PPO's budget of environment steps (tax years played in training)
N_STEPS = 256  # environment steps per PPO rollout
GRID_POINTS = 21

settings = [
    "name=ppo_study", f"seeds={SEEDS}", f"population.n_agents={AGENTS}", "economy.years=1", "economy.steps_per_year=1",
    "workers.kind=rational", "mechanism.name=three_bracket",
    f"planners=[{{kind: ppo, timesteps: {TIMESTEPS}, n_steps: {N_STEPS}}}, {{kind: saez}}, "
    f"{{kind: grid, points_per_parameter: {GRID_POINTS}}}]",
]

if __name__ == "__main__":
    summary = run_comparison(load_config(None, settings), OUT, overwrite=True)
    print(console_table(summary))
    print(f"report: {write_report(OUT)}")
