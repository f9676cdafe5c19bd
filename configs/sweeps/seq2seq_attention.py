r"""Ablation 4: attention in chord-sequence transcription, against sequence length.

    python experiments/sweep.py --sweep=configs/sweeps/seq2seq_attention.py:small \
        --root=workdirs/sweeps/seq2seq_attention --seeds=2 --parallel=2 --pin

No attention (the encoder summary is the only context) vs additive vs dot vs
general vs location-aware scores on the 10 s clips of ``chord_seq2seq``. Length:
the ``*_long`` columns score the references of 16 tokens or more (about one in
ten), where a fixed summary should fall behind attention. Every run is scored
greedily and with beam 4 (``decode.compare_beam_sizes``: the ``beam4_*``
columns), so greedy vs beam compares the same parameters, not two trainings.
"""

from mir_jax.sweeps import product, sweep_config


def get_config(arg=None):
  """The chord seq2seq experiment; ``arg`` ('tiny' or '') is passed on."""
  return sweep_config('configs/chord_seq2seq.py', arg or '', metric='majmin',
                      columns=('majmin', 'token_error_rate', 'beam4_majmin', 'beam4_token_error_rate',
                      'majmin_long', 'token_error_rate_long', 'beam4_majmin_long',
                      'beam4_token_error_rate_long', 'chord_token_error_rate',
                      'duration_token_error_rate'))


def get_sweep():
  return product({'model.attention': ['none', 'additive', 'dot', 'general', 'location']})
