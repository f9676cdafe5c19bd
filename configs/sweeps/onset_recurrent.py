r"""Ablation 2a: recurrent design for onset detection.

    python experiments/sweep.py --sweep=configs/sweeps/onset_recurrent.py \
        --root=workdirs/sweeps/onset_recurrent --seeds=3

Cell (plain RNN with tanh or ReLU, GRU, LSTM) x direction (uni- vs
bidirectional) at the default size, then depth 1/2/3 x hidden size 32/64/128
for the bidirectional LSTM. Onsets need little context, so expect small gaps
between cells and a clear one between directions only at low latency.
"""

from mir_jax.sweeps import concat, product, sweep_config


def get_config(arg=None):
  """The onset BLSTM experiment; ``arg`` ('tiny' or '') is passed on."""
  return sweep_config('configs/onset_blstm.py', arg or '')


def get_sweep():
  return concat(
      product({'model.cell': ['rnn_tanh', 'rnn_relu', 'gru', 'lstm'],
               'model.bidirectional': [False, True]}),
      product({'model.num_layers': [1, 2, 3], 'model.hidden_size': [32, 64, 128]}),
  )
