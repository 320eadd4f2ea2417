"""A PureJaxRL-shaped PPO on gymnax CartPole: the speed anchor for ``bench_suite.py``.

    python experiments/anchor_cartpole.py [--envs 2048] [--steps 128] [--updates 10]

The smallest honest PPO in the style users compare us with: one function, gymnax's own
auto-resetting ``step`` (reset computed every step and selected), separate 64x64 tanh actor
and critic, GAE by reverse scan, 4 epochs x 4 minibatches of a shuffled batch, Adam with
global-norm clipping, all of it in one ``lax.scan`` under ``jit``. Independent of the project's
trainer (it imports nothing from it), so its speed is a fixed point to compare the trainer to.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import flax.linen as nn
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import optax


class ActorCritic(nn.Module):
    num_actions: int

    @nn.compact
    def __call__(self, x):
        init = nn.initializers.orthogonal(np.sqrt(2))
        a = nn.tanh(nn.Dense(64, kernel_init=init)(x))
        a = nn.tanh(nn.Dense(64, kernel_init=init)(a))
        logits = nn.Dense(self.num_actions, kernel_init=nn.initializers.orthogonal(0.01))(a)
        c = nn.tanh(nn.Dense(64, kernel_init=init)(x))
        c = nn.tanh(nn.Dense(64, kernel_init=init)(c))
        value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))(c)
        return logits, value[..., 0]


def make_update(num_envs: int, num_steps: int, epochs: int = 4, minibatches: int = 4,
                gamma: float = 0.99, lam: float = 0.95, clip: float = 0.2, ent: float = 0.01,
                vf: float = 0.5, lr: float = 2.5e-4):
    """``(init(key) -> carry, update(carry, _) -> (carry, mean reward))``."""
    env, env_params = gymnax.make("CartPole-v1")
    net = ActorCritic(env.action_space(env_params).n)
    tx = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(lr, eps=1e-5))
    batch = num_envs * num_steps
    mb_size = batch // minibatches

    def init(key):
        k_net, k_env, key = jax.random.split(key, 3)
        obs, state = jax.vmap(env.reset, (0, None))(jax.random.split(k_env, num_envs), env_params)
        params = net.init(k_net, obs[:1])
        return params, tx.init(params), state, obs, key

    def loss_fn(params, obs, act, logp_old, adv, ret, val_old):
        logits, value = net.apply(params, obs)
        logp_all = jax.nn.log_softmax(logits)
        logp = jnp.take_along_axis(logp_all, act[:, None], -1)[:, 0]
        ratio = jnp.exp(logp - logp_old)
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        pg = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip, 1 + clip) * adv).mean()
        v_clipped = val_old + jnp.clip(value - val_old, -clip, clip)
        v_loss = 0.5 * jnp.maximum(jnp.square(value - ret), jnp.square(v_clipped - ret)).mean()
        entropy = -(jnp.exp(logp_all) * logp_all).sum(-1).mean()
        return pg + vf * v_loss - ent * entropy

    def update(carry, _):
        params, opt_state, state, obs, key = carry

        def step(c, _):
            state, obs, key = c
            key, k_act, k_env = jax.random.split(key, 3)
            logits, value = net.apply(params, obs)
            act = jax.random.categorical(k_act, logits)
            logp = jnp.take_along_axis(jax.nn.log_softmax(logits), act[:, None], -1)[:, 0]
            obs2, state, reward, terminated, truncated, _ = jax.vmap(env.step, (0, 0, 0, None))(
                jax.random.split(k_env, num_envs), state, act, env_params)
            done = terminated | truncated   # as PureJaxRL: no bootstrap at the time limit
            return (state, obs2, key), (obs, act, logp, value, reward, done)

        (state, obs, key), (b_obs, b_act, b_logp, b_val, b_rew, b_done) = jax.lax.scan(
            step, (state, obs, key), None, num_steps)
        _, last_val = net.apply(params, obs)

        def gae_step(c, x):
            adv, next_val = c
            rew, val, done = x
            delta = rew + gamma * next_val * (1 - done) - val
            adv = delta + gamma * lam * (1 - done) * adv
            return (adv, val), adv

        _, advs = jax.lax.scan(gae_step, (jnp.zeros(num_envs), last_val),
                               (b_rew, b_val, b_done.astype(jnp.float32)), reverse=True)
        rets = advs + b_val
        flat = jax.tree.map(lambda x: x.reshape((batch,) + x.shape[2:]),
                            (b_obs, b_act, b_logp, advs, rets, b_val))

        def epoch(c, k):
            params, opt_state = c
            perm = jax.random.permutation(k, batch)
            shuffled = jax.tree.map(lambda x: x[perm].reshape((minibatches, mb_size) + x.shape[1:]),
                                    flat)

            def minibatch(c, mb):
                params, opt_state = c
                grads = jax.grad(loss_fn)(params, *mb)
                upd, opt_state = tx.update(grads, opt_state)
                return (optax.apply_updates(params, upd), opt_state), None

            return jax.lax.scan(minibatch, (params, opt_state), shuffled)[0], None

        key, k_ep = jax.random.split(key)
        (params, opt_state), _ = jax.lax.scan(epoch, (params, opt_state), jax.random.split(k_ep, epochs))
        return (params, opt_state, state, obs, key), b_rew.mean()

    return init, update


def measure(num_envs: int = 2048, num_steps: int = 128, updates: int = 10, repeats: int = 5,
            trace=None) -> dict:
    """Compile time and median end-to-end env-steps/s of ``updates`` updates in one jit."""
    init, update = make_update(num_envs, num_steps)
    run = jax.jit(lambda c: jax.lax.scan(update, c, None, updates), donate_argnums=0)
    carry = jax.jit(init)(jax.random.PRNGKey(0))
    t0 = time.perf_counter()
    exe = run.lower(carry).compile()
    compile_s = time.perf_counter() - t0
    carry, out = exe(carry)
    jax.block_until_ready(out)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        carry, out = exe(carry)
        jax.block_until_ready(out)
        times.append(time.perf_counter() - t0)
    sec = statistics.median(times)
    if trace:
        trace(lambda: exe(carry)[1])
    return {"value": updates * num_envs * num_steps / sec, "compile_s": compile_s,
            "seconds_per_call": sec, "num_envs": num_envs, "num_steps": num_steps,
            "updates_per_call": updates, "final_mean_reward": float(np.asarray(out)[-1])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", type=int, default=2048)
    p.add_argument("--steps", type=int, default=128)
    p.add_argument("--updates", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    print(json.dumps(measure(a.envs, a.steps, a.updates, a.repeats)))


if __name__ == "__main__":
    main()
