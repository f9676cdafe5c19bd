"""A fake task for the loop tests: random frames, a tiny MLP with dropout, masked MSE.

Importable (``build(...)``) and runnable as a script for subprocess tests:
``python tests/train/fake_training.py WORKDIR NUM_STEPS [KILL_AT_STEP] [key=value ...]``
prints the final params' checksum as ``PARAMS_SHA <hex>``.
"""

from __future__ import annotations

import hashlib
import sys

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

FEATURES = 6
FRAMES = 8


class TinyModel(nn.Module):
  hidden: int = 16
  dropout: float = 0.25

  @nn.compact
  def __call__(self, batch, *, deterministic=True):
    x = batch['features'].reshape(batch['features'].shape[:2] + (-1,))
    x = nn.relu(nn.Dense(self.hidden)(x))
    x = nn.Dropout(self.dropout)(x, deterministic=deterministic)
    return nn.Dense(1)(x)[..., 0]


def loss_fn(logits, batch):
  mask = batch['mask'].astype(jnp.float32)
  err = (logits - batch['target']) ** 2 * mask
  loss = err.sum() / jnp.maximum(mask.sum(), 1.0)
  return loss, {'mask_frac': mask.mean()}


def make_records(num: int, seed: int):
  rng = np.random.default_rng(seed)
  w = rng.normal(size=(FEATURES,)).astype(np.float32)
  out = []
  for _ in range(num):
    feats = rng.normal(size=(FRAMES, FEATURES, 1)).astype(np.float32)
    length = int(rng.integers(FRAMES // 2, FRAMES + 1))
    mask = np.arange(FRAMES) < length
    out.append({'features': feats, 'mask': mask, 'lengths': np.int32(length),
                'target': (feats[..., 0] @ w).astype(np.float32)})
  return out


def make_iterator(batch_size: int, seed: int = 0, num: int = 40):
  ds = grain.MapDataset.source(make_records(num, 1234)).seed(seed).shuffle().repeat()
  return iter(ds.batch(batch_size, drop_remainder=True).to_iter_dataset())


def make_config(num_steps: int = 20, **overrides) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.optimizer = dict(name='adam', learning_rate=1e-2, schedule='warmup_cosine', warmup_steps=3,
                     decay_steps=0, end_learning_rate=0.0, clip_norm=1.0, weight_decay=0.0,
                     b1=0.9, b2=0.999, eps=1e-8, momentum=0.9, nesterov=False, step_every=0,
                     step_factor=0.1)
  c.train = dict(num_steps=num_steps, log_every=5, eval_every=0, distributed=False,
                 tensorboard=False)
  c.checkpoint = dict(every=3, max_to_keep=3, best_metric='', best_mode='max', async_save=True)
  c.debug = dict(kill_at_step=-1)
  c.data = dict(batch_size=8)
  for key, value in overrides.items():
    node = c
    *parents, leaf = key.split('.')
    for p in parents:
      node = node[p]
    node[leaf] = type(node[leaf])(value)
  return c


def example_batch(batch_size: int):
  return {k: np.zeros((batch_size,) + np.shape(v), np.asarray(v).dtype)
          for k, v in make_records(1, 0)[0].items()}


def params_sha(params) -> str:
  h = hashlib.sha256()
  for leaf in jax.tree_util.tree_leaves(jax.device_get(params)):
    h.update(np.ascontiguousarray(leaf).tobytes())
  return h.hexdigest()


def run(workdir: str, config, echo=print):
  from mir_jax.train import loop  # pylint: disable=g-import-not-at-top
  bs = int(config.data.batch_size)
  state = loop.train(config, workdir, model=TinyModel(), loss_fn=loss_fn,
                     train_iter=make_iterator(bs), example_batch=example_batch(bs), echo=echo)
  return state


if __name__ == '__main__':
  workdir, num_steps = sys.argv[1], int(sys.argv[2])
  kill = int(sys.argv[3]) if len(sys.argv) > 3 else -1
  extra = dict(a.split('=', 1) for a in sys.argv[4:])
  cfg = make_config(num_steps, **{'debug.kill_at_step': kill, **extra})
  final = run(workdir, cfg)
  print('PARAMS_SHA', params_sha(final.params), flush=True)
