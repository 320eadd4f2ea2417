"""Evaluation GIFs: every few evaluations, one episode per evaluation task, watchable.

With ``eval.gif_every = g > 0`` (and evaluation on), the evaluations at updates
``m * eval.every_updates`` for ``m = 1, 1 + g, 1 + 2g, ...`` (the first one included; the
index comes from the update count, so a resumed run keeps the cadence) and the run's last
evaluation also record one episode per evaluation task (the env's ``eval_sets``: the first
episode of each set) played by the current policy of the first vmapped run, and write

* ``<run dir>/eval_gifs/<task>/step_<agent steps>.gif`` (the task name with ``/`` and other
  characters a file name should not hold as ``_``), and
* a TensorBoard image ``eval_gif/<task>`` at that step holding the GIF (the images tab plays
  it), plus the scalar ``eval/gif_seconds``: the time the training loop waited for them.

The episodes are played and drawn on device by one compiled program (compiled once per run, in
the background while training starts): a ``lax.while_loop`` over at most ``eval.gif_steps``
steps (0: 300) of the tasks side by side, with the evaluator's own reset and policy step (so
with ``eval.episodes=1`` each GIF is exactly the episode its task's metrics were scored on),
stopping when every episode has ended. Each step is drawn as palette indices by the env
package's renderer (``EVAL_FRAMES``, by the config's ``env.name``). The frames come to the
host once; a worker thread captions them (task, agent steps, the episode's step, and at its
end how it ended), encodes the GIFs and writes them (a temporary name, then a rename), while
training goes on. At most one such job is in flight; the loop waits for it before the next
and at the end of the run (also after SIGTERM), so no GIF is left half written. GIFs are never
worth a run: one that fails is a warning line, and a recording program that fails to compile
or run turns them off for the rest of the run.

A GIF has one frame for the reset and one per agent step until its episode ended (or was
cut at ``gif_steps``); the last frame is held a second longer.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import re
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_arena.config import Config, ConfigError
from jaxrl_arena.evaluation import Evaluator
from jaxrl_arena.logging import human_number

GIF_DIRNAME = "eval_gifs"
DEFAULT_STEPS = 300
HOLD_LAST_MS = 1000
CAPTION_HEIGHT = 13
# Caption colours, appended to the env's palette.
BLACK, WHITE = (0, 0, 0), (255, 255, 255)


@dataclasses.dataclass(frozen=True)
class EvalFrames:
    """How an env's evaluation episodes become GIF frames, on device (jittable):
    ``frame(state, fixed) -> uint8[h, w]``: indices into ``palette``, every step;
    ``fixed(state)``: what stays the same through an episode, drawn once at its reset and handed
    to ``frame`` (None: nothing); ``ending(state, truncated) -> int32``: how an episode that
    ended in ``state`` ended, an index into ``endings`` (None: always ``endings[0]``);
    ``fps``: GIF frames per second (one frame per agent step)."""

    frame: Callable[[Any, Any], jax.Array]
    fixed: Callable[[Any], Any] | None
    palette: np.ndarray
    endings: tuple[str, ...]
    ending: Callable[[Any, jax.Array], jax.Array] | None
    fps: int


def _npp_frames() -> EvalFrames:
    from envs.npp import render as npp_render

    # Downsample 4: 150 x 264 px; at frame skip 4 an agent step is 4 game frames, so 15 fps
    # is real time.
    return EvalFrames(
        frame=lambda state, tiles: npp_render.render_indexed(state, downsample=4, tiles=tiles),
        fixed=lambda state: npp_render.tile_indices(state, downsample=4),
        palette=npp_render.PALETTE, endings=npp_render.ENDINGS, ending=npp_render.ending, fps=15)


def _arena_frames() -> EvalFrames:
    from envs.arena import render as arena_render

    return EvalFrames(
        frame=lambda state, _: arena_render.render_indexed(state, arena_render.eval_scale(state)),
        fixed=None, palette=arena_render.PALETTE, endings=("ended",), ending=None, fps=10)


# The envs with evaluation GIFs, by their config name (``env.name``), as ``play.RENDERERS``.
EVAL_FRAMES: dict[str, Callable[[], EvalFrames]] = {"arena": _arena_frames, "npp": _npp_frames}


def check_config(cfg: Config) -> None:
    """One-line ``ConfigError`` at the start of a run for GIF settings it cannot honour (the
    values' ranges are ``config.validation.check_values``')."""
    e, env_name = cfg.eval, cfg.env.name
    if e.gif_every > 0 and env_name not in EVAL_FRAMES:
        raise ConfigError(f"eval.gif_every={e.gif_every}: env {env_name!r} has no renderer for "
                          f"evaluation GIFs (envs with one: {', '.join(EVAL_FRAMES)}); set "
                          "eval.gif_every=0")
    if e.gif_every > 0 and e.every_updates <= 0:
        print(f"note: eval.gif_every={e.gif_every} records nothing: evaluation is off "
              "(eval.every_updates=0)", file=sys.stderr, flush=True)


def task_dirname(task: str) -> str:
    """A task name as one directory name (``arena/basic`` -> ``arena_basic``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", task).strip("._") or "task"


class CaptionText:
    """Caption lines as pixel masks, each word drawn once and kept (a GIF's captions differ
    in the step count only, and those repeat across GIFs)."""

    def __init__(self) -> None:
        from PIL import ImageFont

        try:
            self.font = ImageFont.load_default(size=CAPTION_HEIGHT - 3)
        except TypeError:  # Pillow < 10.1: the fixed bitmap font
            self.font = ImageFont.load_default()
        self.gap = max(6, round(self.font.getlength("   ")))
        self._words: dict[str, np.ndarray] = {}

    def word(self, text: str) -> np.ndarray:
        """bool[CAPTION_HEIGHT, width]: ``text`` drawn white on black."""
        mask = self._words.get(text)
        if mask is None:
            from PIL import Image, ImageDraw

            # Mode "1": glyphs drawn without anti-aliasing, as the GIF's two caption colours.
            room = math.ceil(self.font.getlength(text)) + CAPTION_HEIGHT   # some glyphs overhang
            image = Image.new("1", (room, CAPTION_HEIGHT))
            ImageDraw.Draw(image).text((0, 1), text, fill=1, font=self.font)
            mask = np.asarray(image, bool)
            mask = mask[:, :int(np.flatnonzero(mask.any(0)).max(initial=0)) + 1]
            if len(self._words) < 10_000:
                self._words[text] = mask
        return mask

    def line(self, words: tuple[str, ...], width: int) -> np.ndarray:
        """bool[CAPTION_HEIGHT, width]: ``words`` left to right, cut at ``width``."""
        out = np.zeros((CAPTION_HEIGHT, width), bool)
        x = 2
        for text in words:
            mask = self.word(text)
            span = min(mask.shape[1], width - x)
            if span <= 0:
                break
            out[:, x:x + span] |= mask[:, :span]
            x += mask.shape[1] + self.gap
        return out


@dataclasses.dataclass
class RecordedEpisodes:
    """One recording, on the host: ``frames`` uint8[steps + 1, K, h, w] (rows past an
    episode's end are not part of it), per task ``length`` (agent steps played), ``ended``
    (the episode ended within them) and ``ending`` (index into the endings)."""

    frames: np.ndarray
    length: np.ndarray
    ended: np.ndarray
    ending: np.ndarray


class GifRecorder:
    """Records the evaluation GIFs of one run (see the module docstring)."""

    def __init__(self, evaluator: Evaluator, frames: EvalFrames, *, directory: Path,
                 steps: int, every: int, every_updates: int) -> None:
        self.evaluator = evaluator
        self.frames = frames
        self.directory = Path(directory) / GIF_DIRNAME
        self.steps = int(steps)
        self.every = int(every)
        self.every_updates = int(every_updates)
        self.tasks = evaluator.task_names
        # The first episode of every evaluation set, stacked on axis 0 (one per task).
        self.env_params = jax.tree.map(lambda *xs: jnp.stack([x[0] for x in xs]),
                                       *evaluator.sets.values())
        self.palette = np.concatenate([frames.palette, np.array([BLACK, WHITE], np.uint8)])
        if len(self.palette) > 256:
            raise ValueError(f"a GIF palette holds 256 colours, got {len(self.palette)}")
        self._black, self._white = len(self.palette) - 2, len(self.palette) - 1
        self._device = jax.devices()[0]
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eval-gifs")
        self._captions: CaptionText | None = None   # the worker thread's
        self._compiled: Future | None = None
        self._pending: Future | None = None
        self.failed = False
        self._drop_partial_files()

    # ------------------------------------------------------------------ device side
    def _record_single(self, params):
        """One run's episodes, one per task: frames and how they ended (pure, jittable)."""
        ev, draw, S = self.evaluator, self.frames, self.steps
        K = len(self.tasks)
        k_play, obs, state = ev.start(self.env_params, K)
        fixed = None if draw.fixed is None else jax.vmap(draw.fixed)(state)
        first = jax.vmap(draw.frame)(state, fixed)
        buffer = jnp.zeros((S + 1,) + first.shape, jnp.uint8).at[0].set(first)

        def body(c):
            t, state, obs, carry, done, length, ending, buffer = c
            obs, state, _, term, trunc, carry = ev.step(params, self.env_params, k_play, t,
                                                        state, obs, carry)
            live = ~done
            ends = live & jnp.all(term | trunc, axis=-1)
            length = length + live.astype(jnp.int32)
            if draw.ending is not None:
                ending = jnp.where(ends, jax.vmap(draw.ending)(state, trunc), ending)
            # Rows past an episode's end hold frames of the stepped-on state: never shown.
            frame = jax.vmap(draw.frame)(state, fixed)
            buffer = jax.lax.dynamic_update_index_in_dim(buffer, frame, t + 1, 0)
            return t + 1, state, obs, carry, done | ends, length, ending, buffer

        def cond(c):
            return (c[0] < S) & ~jnp.all(c[4])

        init = (jnp.zeros((), jnp.int32), state, obs,
                ev.policy.initial_carry(K * ev.env.num_agents), jnp.zeros(K, bool),
                jnp.zeros(K, jnp.int32), jnp.zeros(K, jnp.int32), buffer)
        _, _, _, _, done, length, ending, buffer = jax.lax.while_loop(cond, body, init)
        return buffer, length, done, ending

    def compile_in_background(self, params) -> None:
        """Start compiling the recording program for ``params`` (with the run axis, as in the
        train state) on the worker thread; the first recording waits for it."""
        shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), params)
        program = jax.jit(self._record_single)
        self._compiled = self._executor.submit(lambda: program.lower(shapes).compile())

    # ------------------------------------------------------------------ the loop's side
    def due(self, before: int, after: int, last: bool) -> bool:
        """Whether the evaluation after updates ``before`` -> ``after`` records GIFs: it is the
        run's last, or it passes ``m * every_updates`` for some ``m = 1 + k * every``."""
        if last:
            return True
        lo, hi = before // self.every_updates, after // self.every_updates
        first_due = math.ceil(lo / self.every) * self.every + 1   # smallest due m above lo
        return first_due <= hi

    def record(self, params, agent_steps: int, logger) -> float:
        """Record the GIFs of the first run's policy in ``params`` (leading run axis) at
        ``agent_steps``; returns the seconds the caller waited. The GIFs are written and
        logged (``logger.log_gif``) on the worker thread."""
        t0 = time.perf_counter()
        self.flush()   # at most one recording in flight: its frames are large
        if self.failed:
            return time.perf_counter() - t0
        if self._compiled is None:
            self.compile_in_background(params)
        try:
            compiled = self._compiled.result()
            first_run = jax.device_put(jax.tree.map(lambda x: x[0], params), self._device)
            frames, length, ended, ending = jax.device_get(compiled(first_run))
        except Exception as error:  # noqa: BLE001 - e.g. out of device memory for the frames
            self.failed = True
            print(f"warning: evaluation GIFs turned off for this run: recording them failed "
                  f"({type(error).__name__}: {error})", file=sys.stderr, flush=True)
            return time.perf_counter() - t0
        recorded = RecordedEpisodes(np.asarray(frames), np.asarray(length), np.asarray(ended),
                                    np.asarray(ending))
        self._pending = self._executor.submit(self._write_all, recorded, int(agent_steps), logger)
        return time.perf_counter() - t0

    def flush(self) -> None:
        """Wait until the GIFs of the last recording are written (before closing the logger)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._executor.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ host side
    def _write_all(self, recorded: RecordedEpisodes, agent_steps: int, logger) -> None:
        for k, task in enumerate(self.tasks):
            try:
                gif, (height, width) = self.encode(recorded, k, agent_steps)
                path = self.directory / task_dirname(task) / f"step_{agent_steps}.gif"
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_name(f".{path.name}.partial")
                partial.write_bytes(gif)
                os.replace(partial, path)
                logger.log_gif(agent_steps, f"eval_gif/{task}", gif, height, width)
            except Exception as error:  # noqa: BLE001 - a GIF is never worth stopping training
                print(f"warning: the evaluation GIF of {task} at step {agent_steps} was not "
                      f"written: {type(error).__name__}: {error}", file=sys.stderr, flush=True)

    def encode(self, recorded: RecordedEpisodes, k: int, agent_steps: int
               ) -> tuple[bytes, tuple[int, int]]:
        """Task ``k``'s episode as GIF bytes and its ``(height, width)``: one frame for the
        reset and one per agent step played, each captioned with its step (so no two frames
        are alike and none is merged away), the last with how the episode ended and held
        ``HOLD_LAST_MS`` longer."""
        from PIL import Image

        n = int(recorded.length[k])
        frames = recorded.frames[: n + 1, k]
        h, w = frames.shape[1:]
        how = self.frames.endings[int(recorded.ending[k])] if recorded.ended[k] else "running"
        if self._captions is None:
            self._captions = CaptionText()
        head = f"{self.tasks[k]} @ {human_number(agent_steps)}"
        palette = self.palette.reshape(-1).tolist()
        images = []
        for t, frame in enumerate(frames):
            canvas = np.empty((h + CAPTION_HEIGHT, w), np.uint8)
            canvas[:h] = frame
            words = (head, f"t={t}") + ((how,) if t == n else ())
            canvas[h:] = np.where(self._captions.line(words, w), self._white, self._black)
            image = Image.frombytes("P", (w, h + CAPTION_HEIGHT), canvas.tobytes())
            image.putpalette(palette)
            images.append(image)
        durations = [round(1000 / self.frames.fps)] * len(images)
        durations[-1] += HOLD_LAST_MS
        out = io.BytesIO()
        images[0].save(out, format="GIF", save_all=True, append_images=images[1:],
                       duration=durations, loop=0, optimize=False)
        return out.getvalue(), (h + CAPTION_HEIGHT, w)

    def _drop_partial_files(self) -> None:
        """Partial files a killed process left behind (the rename never happened)."""
        if self.directory.is_dir():
            for partial in self.directory.glob("*/.*.partial"):
                partial.unlink(missing_ok=True)


def make_gif_recorder(cfg: Config, evaluator: Evaluator | None, directory: Path
                      ) -> GifRecorder | None:
    """The recorder ``cfg.eval`` asks for, or None (no evaluation, or ``gif_every=0``)."""
    e = cfg.eval
    if evaluator is None or e.gif_every <= 0:
        return None
    check_config(cfg)
    return GifRecorder(evaluator, EVAL_FRAMES[cfg.env.name](), directory=directory,
                       steps=e.gif_steps or DEFAULT_STEPS, every=e.gif_every,
                       every_updates=e.every_updates)
