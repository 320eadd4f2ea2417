"""Every named recipe builds and traces its whole compiled update and its held-out evaluation
(no compilation): catches a recipe whose config, env, policy, curriculum or evaluation sets do
not fit together."""

import jax
import pytest

from jaxrl_arena import config as C
from jaxrl_arena.evaluation import make_evaluator
from jaxrl_arena.train import make_train

SMALL = {
    "ppo.num_envs": "4", "ppo.num_steps": "8", "ppo.bptt_horizon": "4", "ppo.minibatch_size": "0",
    "ppo.num_minibatches": "2", "run.updates_per_chunk": "1", "run.total_timesteps": "100000",
}


@pytest.mark.parametrize("name", sorted(C.RECIPES))
def test_recipe_traces(name):
    cfg = C.apply_overrides(C.get_recipe(name), [f"{k}={v}" for k, v in SMALL.items()])
    program = make_train(cfg, devices=jax.devices()[:1])
    state = jax.eval_shape(program.init)
    new_state, metrics = jax.eval_shape(program.chunk_fn(1), state)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    for key in ("loss/policy_loss", "loss/value_loss", "overview/reward", "train/learning_rate"):
        assert metrics[key].shape == (1, 1), key
    evaluator = make_evaluator(cfg, program.env, program.policy)
    if evaluator is not None:  # the held-out evaluation traces too, one scalar per task
        out = jax.eval_shape(evaluator.evaluate_single, jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), state.params))
        assert out and all(v.shape == () for v in out.values())
        assert any(k.startswith(("eval/success_rate/", "eval/heart.get/")) for k in out)
