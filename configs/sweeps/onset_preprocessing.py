r"""Ablation 1: input preprocessing for onsets and tagging (Choi et al. 2017).

    python experiments/sweep.py --sweep=configs/sweeps/onset_preprocessing.py \
        --root=workdirs/sweeps/onset_preprocessing --seeds=3

One factor at a time from each task's default: log vs linear magnitude, mel vs
STFT vs CQT, number of mel bands, hop size (frame rate), sample rate (the hop
follows so the frame rate stays), spectral whitening and local contrast
normalisation. Rows start with ``config=onset_blstm`` or ``config=tagging_crnn``;
the plot has one panel per task metric (onset F at 50 ms, tag ROC-AUC).
``:tiny`` runs the same grid on the tiny configs.
"""

from mir_jax.sweeps import concat, product, sweep_config, zip_

ONSET = 'configs/onset_blstm.py'
TAGGING = 'configs/tagging_crnn.py'


def get_config(arg=None):
  """Base config of the sweep; ``arg`` ('tiny' or '') goes to every task config."""
  return sweep_config(ONSET, arg or '')


def _common():
  """Settings both tasks share: compression and normalisation."""
  return concat(
      [{}],  # the task's default (log-mel in dB)
      {'features.log': ['none', 'log1p']},
      [{'features.whitening': True}, {'features.lcn': True},
       {'features.whitening': True, 'features.lcn': True}],
  )


def get_sweep():
  onset = concat(
      _common(),
      # One frame size for the linear spectrogram (3 sizes give different bin counts)
      # and for the CQT, whose hop must be a multiple of 2**(octaves - 1) = 64.
      [{'features.kind': 'stft', 'features.n_ffts': ()},
       {'features.kind': 'cqt', 'features.n_ffts': (), 'features.hop_length': 256}],
      {'features.n_mels': [20, 80]},
      {'features.hop_length': [110, 441]},  # 200 and 50 fps (default 220: 100 fps)
      zip_({'features.sample_rate': [16000, 11025], 'features.hop_length': [160, 110]}),
  )
  tagging = concat(
      _common(),
      [{'features.kind': 'stft'},
       {'features.kind': 'cqt', 'features.hop_length': 896, 'features.fmin': 32.703}],
      {'features.n_mels': [32, 128]},
      {'features.hop_length': [441, 1764]},  # 50 and 12.5 fps (default 882: 25 fps)
      zip_({'features.sample_rate': [16000], 'features.hop_length': [640]}),
  )
  return concat(product([{'config': ONSET}], onset), product([{'config': TAGGING}], tagging))
