"""A reinforcement-learning planner: PPO (stable-baselines3) trained against the population model.

Planner-vs-population training as in the reference project: the planner environment
(`envs.PlannerEnv`, one step = one tax year, actions in [-1, 1] mapped onto the mechanism's
bounds) is built on the run's population model (rational, bounded or surrogate workers), and
`stable_baselines3.PPO` with an MLP policy trains on it for a stated budget of environment
steps, observations (already of order one) standardised on the fly by `VecNormalize`. The
planner then holds the parameters its trained policy chooses deterministically from the first
observation of an episode. The training curve (mean reward per rollout) goes to the report, and
the trained policy to the run directory: `planners/<label>/ppo_policy.zip` (load with
`stable_baselines3.PPO.load`) and `ppo_vecnormalize.pkl` (the observation normaliser, load with
`VecNormalize.load(path, venv)`).
"""

from __future__ import annotations

import io
import pickle

import torch
from tqdm.auto import tqdm

from ..mechanisms.base import Mechanism
from ..population_model import PopulationModel
from .base import OneShotPlanner

Tensor = torch.Tensor


class PPOPlanner(OneShotPlanner):
    kind = "ppo"

    def __init__(
        self, mechanism: Mechanism, timesteps: int = 4096, years_per_episode: int = 1, n_steps: int = 256,
        learning_rate: float = 3e-3, seed: int = 0,
    ) -> None:
        for name, value in (("timesteps", timesteps), ("years_per_episode", years_per_episode), ("n_steps", n_steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ppo planner: {name} must be a whole number >= 1, got {value!r}")
        if n_steps < 2 or n_steps > timesteps:
            raise ValueError(f"ppo planner: n_steps must lie in [2, timesteps = {timesteps}], got {n_steps}")
        if not learning_rate > 0:
            raise ValueError(f"ppo planner: learning_rate must be positive, got {learning_rate}")
        super().__init__(mechanism)
        self.timesteps, self.years_per_episode, self.n_steps = timesteps, years_per_episode, n_steps
        self.learning_rate, self.seed = learning_rate, seed
        self.training_curve: list[tuple[int, float]] = []  # (environment steps so far, mean reward of the rollout)

    def plan(self, population_model: PopulationModel) -> Tensor:
        try:
            from stable_baselines3 import PPO
            from stable_baselines3.common.callbacks import BaseCallback
            from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
        except ImportError:
            raise ValueError("ppo planner: needs stable-baselines3; install the `rl` extra (pip install 'llm-economist[rl]')") from None
        from ..envs.planner_env import PlannerEnv  # the environments build their populations through the factory

        m = population_model

        def make_env() -> PlannerEnv:
            return PlannerEnv(m.wage, self.mechanism, m.prefs, m.workers, steps_per_year=1, years=self.years_per_episode,
                              welfare_name=m.welfare_name, welfare_params=m.welfare_params, units=m.units)

        curve = self.training_curve
        bar = tqdm(total=self.timesteps, desc="ppo training", unit="step", leave=False, disable=not self.progress)

        class RecordCurve(BaseCallback):
            def _on_step(self) -> bool:
                return True

            def _on_rollout_end(self) -> None:
                curve.append((int(self.num_timesteps), float(self.model.rollout_buffer.rewards.mean())))
                bar.update(int(self.num_timesteps) - bar.n)
                bar.set_postfix_str(f"mean reward {curve[-1][1]:.3f}", refresh=False)

        env = VecNormalize(DummyVecEnv([make_env]), norm_obs=True, norm_reward=False)
        env.seed(self.seed)
        agent = PPO("MlpPolicy", env, n_steps=self.n_steps, batch_size=min(64, self.n_steps), learning_rate=self.learning_rate,
                    seed=self.seed, device="cpu", verbose=0)
        with bar:
            agent.learn(total_timesteps=self.timesteps, callback=RecordCurve())
        env.training = False
        action, _ = agent.predict(env.reset(), deterministic=True)
        self.evaluations += self.timesteps
        policy = io.BytesIO()
        agent.save(policy)
        # VecNormalize pickles without its environments, as its own `save` writes it.
        self.artifacts = {"ppo_policy.zip": policy.getvalue(), "ppo_vecnormalize.pkl": pickle.dumps(env)}
        return env.venv.envs[0].unwrapped.parameters_of(action[0])
