r"""Ablation 4: attention in chord-sequence transcription, against sequence length.

    python experiments/sweep.py --sweep=configs/sweeps/seq2seq_attention.py:small \
        --root=workdirs/sweeps/seq2seq_attention --seeds=2 --parallel=2 --pin

No attention (the encoder summary is the only context) vs additive vs dot vs
general vs location-aware scores, trained on the 10 s clips of ``chord_seq2seq``.
Against sequence length: the ``*_long`` columns score the held-out references of
16 tokens or more (about one in ten), and after training each run is scored
again on 256 held-out clips of 5 s (``len5_*``) and of 20 s (``len20_*``, twice
the longest sequence it trained on), where a fixed-size summary should fall
behind attention. Every evaluation is greedy and beam 4
(``decode.compare_beam_sizes``: the ``beam4_*`` columns), so greedy vs beam
compares the same parameters, not two trainings. The last two settings train
additive and location-aware attention on clips of mixed lengths (5 to 20 s,
``data.synth.train_durations``), the fix for a decoder that learns when to stop
from a single training length.
"""

from mir_jax.sweeps import concat, product, sweep_config


def get_config(arg=None):
  """The chord seq2seq experiment; ``arg`` ('tiny' or '') is passed on."""
  return sweep_config(
      'configs/chord_seq2seq.py', arg or '', metric='majmin',
      columns=('majmin', 'token_error_rate', 'beam4_majmin', 'beam4_token_error_rate',
               'majmin_long', 'token_error_rate_long', 'len5_majmin', 'len5_token_error_rate',
               'len20_majmin', 'len20_token_error_rate', 'len20_beam4_majmin',
               'len20_beam4_token_error_rate', 'chord_token_error_rate',
               'duration_token_error_rate'),
      # 20 s clips need up to ~60 tokens; the decoder has no position input, so a
      # larger budget only lets it write longer sequences.
      evals={'len5_': {'data.synth.duration': 5.0},
             'len20_': {'data.synth.duration': 20.0, 'task.max_tokens': 64}},
      plot=('len5_majmin', 'majmin', 'len20_majmin',
            'len5_token_error_rate', 'token_error_rate', 'len20_token_error_rate'))


def get_sweep():
  return concat(
      product({'model.attention': ['none', 'additive', 'dot', 'general', 'location']}),
      # Length generalisation: the same models trained on clips of 5 to 20 s (drawn per
      # clip; 20 s clips need up to ~60 tokens), still scored on 10 s clips and at 5 / 20 s.
      product({'model.attention': ['additive', 'location']},
              [{'data.synth.train_durations': (5.0, 20.0), 'task.max_tokens': 64}]))
