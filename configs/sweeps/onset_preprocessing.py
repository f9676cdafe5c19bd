r"""Ablation 1: input preprocessing for onsets and tagging (Choi et al. 2017).

    python experiments/sweep.py --sweep=configs/sweeps/onset_preprocessing.py:small \
        --root=workdirs/sweeps/onset_preprocessing --seeds=2 --parallel=2 --pin

One factor at a time from each task's default: log vs linear magnitude, mel vs
STFT vs CQT, number of mel bands, hop size (frame rate), sample rate (the hop
follows so the frame rate stays), spectral whitening and local
contrast normalisation. Onsets start from log-mel (3 frame sizes x 40 bands, 100
fps), tagging from log-CQT (96 bins, ~21.5 fps). Rows start with
``config=onset_blstm`` or ``config=tagging_crnn``; the plot has one panel per
task metric (onset F at 50 ms, tag ROC-AUC).
``:tiny`` runs the same grid on the tiny configs.
"""

from mir_jax.sweeps import concat, product, sweep_config, zip_

ONSET = 'configs/onset_blstm.py'
TAGGING = 'configs/tagging_crnn.py'


def get_config(arg=None):
  """Base config of the sweep; ``arg`` ('tiny' or '') goes to every task config."""
  return sweep_config(ONSET, arg or '',
                      columns=('f_measure_50ms', 'f_measure_25ms', 'roc_auc_macro', 'pr_auc_macro'))


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
      # The tagging default is a log-CQT (hop 1024, ~21.5 fps); mel and STFT at the same hop.
      # Its pitch-class profile needs CQT semitone bins, so those rows turn it off, and the
      # CQT without it is their reference. The STFT uses a 1024 window (= the hop, 513 bins):
      # at 2048 its 1025 bins made the CRNN train at 0.09 steps/s (over 1.5 h for 500 steps);
      # the mel row at the same window separates the representation from the window.
      [{'model.pitch_profile': 0},
       {'features.kind': 'mel', 'features.n_mels': 80, 'model.pitch_profile': 0},
       {'features.kind': 'mel', 'features.n_mels': 128, 'model.pitch_profile': 0},
       {'features.kind': 'mel', 'features.n_mels': 80, 'features.n_fft': 1024,
        'model.pitch_profile': 0},
       {'features.kind': 'stft', 'features.n_fft': 1024, 'model.pitch_profile': 0}],
      {'features.hop_length': [512, 2048]},  # 43 and 10.8 fps
      # Lower sample rates on the 80-band mel (which spans 0 to Nyquist at any rate; the CQT's top
      # octave would pass Nyquist), at the same ~21.5 fps and the same 93 ms window.
      product({'features.kind': ['mel'], 'features.n_mels': [80], 'model.pitch_profile': [0]},
              zip_({'features.sample_rate': [16000, 11025], 'features.hop_length': [744, 512],
                    'features.n_fft': [1486, 1024]})),
  )
  return concat(product([{'config': ONSET}], onset), product([{'config': TAGGING}], tagging))
