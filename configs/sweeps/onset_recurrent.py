r"""Ablation 2a: recurrent design for onset detection.

    python experiments/sweep.py --sweep=configs/sweeps/onset_recurrent.py:small \
        --root=workdirs/sweeps/onset_recurrent --seeds=3 --parallel=2 --pin

Cell (plain RNN with tanh or ReLU, GRU, LSTM) x direction (uni- vs
bidirectional) at the default size, then, for the bidirectional LSTM, depth
1 and 3 and hidden size 32 and 128, one at a time from the default (2 layers;
hidden 64 at the ``small`` size the results were made at). Onsets need little context, so expect small gaps
between cells and a clear one between directions only at low latency.
"""

from mir_jax.sweeps import concat, product, sweep_config


def get_config(arg=None):
  """The onset BLSTM experiment; ``arg`` ('tiny' or '') is passed on."""
  return sweep_config('configs/onset_blstm.py', arg or '',
                      columns=('f_measure_50ms', 'f_measure_25ms', 'precision_50ms', 'recall_50ms'))


def get_sweep():
  return concat(
      product({'model.cell': ['rnn_tanh', 'rnn_relu', 'gru', 'lstm'],
               'model.bidirectional': [False, True]}),
      # Depth and width one at a time from the default (a full grid is 9 runs per seed).
      {'model.num_layers': [1, 3]},
      {'model.hidden_size': [32, 128]},
  )
