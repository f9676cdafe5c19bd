r"""Ablation 3: aggregating frames into one clip-level output, for key and tagging.

    python experiments/sweep.py --sweep=configs/sweeps/clip_aggregation.py:small \
        --root=workdirs/sweeps/clip_aggregation --seeds=3 --parallel=2 --pin

Max pooling vs mean pooling vs strided convolutions vs recurrent summarisation
vs attention pooling, on the key CNN (weighted key score) and the tagging CRNN
(macro ROC-AUC). results.md also lists each setting's parameter count and
training seconds, the cost side of the comparison.
"""

from mir_jax.sweeps import product, sweep_config

AGGREGATIONS = ['max', 'mean', 'strided', 'recurrent', 'attention']


def get_config(arg=None):
  """Base config of the sweep; ``arg`` ('tiny' or '') goes to both task configs."""
  return sweep_config('configs/key_cnn.py', arg or '',
                      columns=('weighted_score', 'accuracy', 'roc_auc_macro', 'pr_auc_macro'))


def get_sweep():
  return product({'config': ['configs/key_cnn.py', 'configs/tagging_crnn.py'],
                  'model.aggregation': AGGREGATIONS})
