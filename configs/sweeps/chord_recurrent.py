r"""Ablation 2b: recurrent design for chord recognition.

    python experiments/sweep.py --sweep=configs/sweeps/chord_recurrent.py:small \
        --root=workdirs/sweeps/chord_recurrent --seeds=3 --parallel=2 --pin

Cell (plain RNN with tanh or ReLU, GRU, LSTM) x direction on the CRNN's
recurrent layer, then, for the bidirectional LSTM, depth 2 and 3 and hidden
size 32 and 128, one at a time from the default (1 layer, hidden 64). Chords
change over seconds: expect the gated cells and the bidirectional (offline)
model to matter more here than for onsets.
"""

from mir_jax.sweeps import concat, product, sweep_config


def get_config(arg=None):
  """The chord CRNN experiment; ``arg`` ('tiny' or '') is passed on."""
  return sweep_config('configs/chord_crnn.py', arg or '',
                      columns=('majmin', 'root', 'mirex', 'sevenths'))


def get_sweep():
  return concat(
      product({'model.cell': ['rnn_tanh', 'rnn_relu', 'gru', 'lstm'],
               'model.bidirectional': [False, True]}),
      # Depth and width one at a time from the default (a full grid is 9 runs per seed).
      {'model.num_layers': [2, 3]},
      {'model.hidden_size': [32, 128]},
  )
