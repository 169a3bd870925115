"""The optimal three-bracket schedule as the welfare function's inequality aversion runs over 0,
0.5, 1, 2 and Rawlsian: grid optimum (21 points a rate, then a finer local grid) on 2,000 census
workers with the default economy (rational workers, eta = 0, elasticity 0.33), five census
samples. Writes runs/aversion/table.md and aversion.png; about 6 minutes on two cores.

    python experiments/welfare/run_aversion.py [SETTINGS ...]   e.g. economy.share_not_working=0.19
"""

import sys

from llm_economist.planner_factory import load_config
from llm_economist.studies.aversion import run_aversion_study

if __name__ == "__main__":
    config = load_config(None, ["name=aversion", "seeds=5", "population.n_agents=2000", "mechanism.name=three_bracket", *sys.argv[1:]])
    run_aversion_study(config, f"runs/{config.name}", progress=print)
    print(open(f"runs/{config.name}/table.md").read())
