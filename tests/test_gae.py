"""GAE against hand-computed values: termination, truncation, rollout boundary, zero length."""

import chex
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_arena.ppo import gae

G, L = 0.9, 0.8
R = [1.0, 2.0, 3.0]
V = [0.5, 0.6, 0.7]
LAST = 0.8


def run(term=(0, 0, 0), trunc=(0, 0, 0), final=(0.0, 0.0, 0.0), r=R, v=V, last=LAST):
    col = lambda x, dt=jnp.float32: jnp.asarray(x, dt)[:, None]
    adv = gae(col(r), col(v), col(term, bool), col(trunc, bool), col(final), jnp.asarray([last]),
              G, L)
    chex.assert_shape(adv, (len(r), 1))
    chex.assert_tree_all_finite(adv)
    return np.asarray(adv[:, 0])


def test_no_episode_end_bootstraps_through():
    # d2 = 3 + .9*.8 - .7; d1 = 2 + .9*.7 - .6; d0 = 1 + .9*.6 - .5; A = d + .72 * A_next
    np.testing.assert_allclose(run(), [4.067168, 4.2044, 3.02], rtol=1e-6)


def test_termination_cuts_bootstrap_and_chain():
    # step 1 terminates: d1 = 2 - .6 = 1.4, no chain from step 2.
    np.testing.assert_allclose(run(term=(0, 1, 0)), [1.04 + 0.72 * 1.4, 1.4, 3.02], rtol=1e-6)


def test_truncation_bootstraps_from_final_observation_and_cuts_chain():
    # step 1 truncates with V(final_obs) = 5: d1 = 2 + .9*5 - .6 = 5.9; chain cut at the boundary.
    np.testing.assert_allclose(run(trunc=(0, 1, 0), final=(9.0, 5.0, 9.0)),
                               [1.04 + 0.72 * 5.9, 5.9, 3.02], rtol=1e-6)


def test_truncation_does_not_use_next_rows_value():
    # The row after a truncation belongs to a new episode: its value (0.7) must not leak in.
    a = run(trunc=(0, 1, 0), final=(0.0, 5.0, 0.0), v=[0.5, 0.6, 100.0])
    assert a[1] == pytest.approx(2 + 0.9 * 5.0 - 0.6)


def test_episode_ending_exactly_at_rollout_boundary():
    # terminated at the last step: the last value (obs of the next episode) is ignored.
    assert run(term=(0, 0, 1))[2] == pytest.approx(3 - 0.7)
    # truncated at the last step: bootstrap from the final observation, not last_value.
    assert run(trunc=(0, 0, 1), final=(0, 0, 4.0))[2] == pytest.approx(3 + 0.9 * 4.0 - 0.7)


def test_single_step_rollout_and_one_step_episodes():
    np.testing.assert_allclose(run(r=[1.0], v=[0.5], term=(0,), trunc=(0,), final=(0,)),
                               [1 + 0.9 * 0.8 - 0.5], rtol=1e-6)
    # Every step ends an episode (length-1 episodes): A_t = r_t - V_t.
    np.testing.assert_allclose(run(term=(1, 1, 1)), np.array(R) - np.array(V), rtol=1e-6)


def test_empty_batch_and_batch_columns_are_independent():
    empty = gae(*(jnp.zeros((4, 0)),) * 2, jnp.zeros((4, 0), bool), jnp.zeros((4, 0), bool),
                jnp.zeros((4, 0)), jnp.zeros((0,)), G, L)
    chex.assert_shape(empty, (4, 0))
    two = gae(jnp.asarray([R, R]).T, jnp.asarray([V, V]).T, jnp.asarray([[0, 1, 0], [0, 0, 0]], bool).T,
              jnp.zeros((3, 2), bool), jnp.zeros((3, 2)), jnp.asarray([LAST, LAST]), G, L)
    np.testing.assert_allclose(np.asarray(two[:, 0]), run(term=(0, 1, 0)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(two[:, 1]), run(), rtol=1e-6)


def two_agent_rollout(trunc=(0, 0, 0), final=(0.0, 0.0, 0.0)):
    """A 3-step rollout of one env with two agents that both see rewards R and values V (no
    termination); returns the transitions and the [T] -> [T, N, A] broadcast."""
    from types import SimpleNamespace

    T, N, A = 3, 1, 2
    per_agent = lambda x: jnp.tile(jnp.asarray(x, jnp.float32)[:, None, None], (1, N, A))
    tr = SimpleNamespace(
        reward=per_agent(R), value=per_agent(V), terminated=per_agent([0, 0, 0]).astype(bool),
        truncated=per_agent(trunc).astype(bool), final_value=per_agent(final),
        obs=jnp.zeros((T, N, A, 1)), action=jnp.zeros((T, N, A), jnp.int32),
        log_prob=jnp.zeros((T, N, A)), reset=jnp.zeros((T, N), bool))
    return tr, per_agent


def test_learner_batch_regresses_values_to_advantages_plus_values():
    """The value target is advantages + rollout-time values (pinned: a target of advantages
    alone, or of rewards-to-go, fails here), agents become rows, sequences keep time order."""
    from jaxrl_arena.ppo import prepare_batch

    tr, per_agent = two_agent_rollout()
    T, N, A = tr.reward.shape
    data, values, returns = prepare_batch(tr, jnp.full((N, A), LAST), (), G, L, horizon=1)
    adv = np.asarray([4.067168, 4.2044, 3.02])       # test_no_episode_end_bootstraps_through
    np.testing.assert_allclose(returns[:, 0], adv + np.asarray(V), rtol=1e-6)
    np.testing.assert_allclose(data.returns.reshape(T, N * A)[:, 1], adv + np.asarray(V), rtol=1e-6)
    np.testing.assert_allclose(data.advantages.reshape(T, N * A)[:, 0], adv, rtol=1e-6)
    np.testing.assert_array_equal(values, per_agent(V).reshape(T, N * A))


def test_era_b_advantage_by_hand():
    """arena.md §13.2 at ratio 1, worked by hand (gamma = lambda = 0.5): rewards 1, 0, 2, 1;
    values .5, .4, .3, .2; the episode terminates at step 1. One segment of 4: A3 = 0;
    A2 = 2 + .5 * .2 - .3 = 1.8; A1 = 0 + 0 - .4 = -0.4 (terminated: no bootstrap, no chain);
    A0 = (1 + .5 * .4 - .5) + .25 * (-.4) = 0.6. Two segments of 2: A1 = A3 = 0, A0 = 0.7,
    A2 = 1.8. A truncation changes nothing (Era B ignores it)."""
    from jaxrl_arena.ppo import era_b_advantages

    r = jnp.asarray([[1.0], [0.0], [2.0], [1.0]])
    v = jnp.asarray([[0.5], [0.4], [0.3], [0.2]])
    term = jnp.asarray([[False], [True], [False], [False]])
    one = era_b_advantages(r, v, term, 0.5, 0.5, segment=4)
    np.testing.assert_allclose(np.asarray(one)[:, 0], [0.6, -0.4, 1.8, 0.0], atol=1e-6)
    two = era_b_advantages(r, v, term, 0.5, 0.5, segment=2)
    np.testing.assert_allclose(np.asarray(two)[:, 0], [0.7, 0.0, 1.8, 0.0], atol=1e-6)


def test_prepare_batch_switches_to_the_era_b_advantage():
    """ppo.advantage=era_b reaches the learner's batch (returns = advantages + values too);
    with a truncation and a bootstrap from last_value, GAE's batch differs."""
    from jaxrl_arena.ppo import era_b_advantages, prepare_batch

    tr, _ = two_agent_rollout(trunc=(0, 1, 0), final=(0, 5, 0))
    T, N, A = tr.reward.shape
    last = jnp.full((N, A), LAST)
    _, values, returns = prepare_batch(tr, last, (), G, L, horizon=1, advantage="era_b",
                                       segment=T)
    rows = lambda x: x.reshape(T, N * A)
    want = era_b_advantages(rows(tr.reward), rows(tr.value), rows(tr.terminated), G, L, T)
    np.testing.assert_allclose(np.asarray(returns), np.asarray(want + values), rtol=1e-6)
    _, _, gae_returns = prepare_batch(tr, last, (), G, L, horizon=1)
    assert not np.allclose(np.asarray(returns), np.asarray(gae_returns))
