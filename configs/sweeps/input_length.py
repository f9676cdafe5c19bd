r"""Ablation 5: training crop length for onsets vs chords.

    python experiments/sweep.py --sweep=configs/sweeps/input_length.py:small \
        --root=workdirs/sweeps/input_length --seeds=3 --parallel=2 --pin

The tutorial's claim: onsets need a short context, chords a longer one. Crops
of 0.5, 1, 2, 4 and 8 seconds (in each model's frames: 100 fps for onsets,
about 10.8 fps for chords); evaluation always sees whole tracks.
"""

from mir_jax.sweeps import concat, product, sweep_config

SECONDS = [0.5, 1.0, 2.0, 4.0, 8.0]


def get_config(arg=None):
  """Base config of the sweep; ``arg`` ('tiny' or '') goes to both task configs."""
  return sweep_config('configs/onset_blstm.py', arg or '',
                      columns=('f_measure_50ms', 'f_measure_25ms', 'majmin', 'root'))


def get_sweep():
  onset_fps = 22050 / 220
  chord_fps = 22050 / 2048
  return concat(
      product([{'config': 'configs/onset_blstm.py'}],
              {'data.crop_frames': [round(s * onset_fps) for s in SECONDS]}),
      product([{'config': 'configs/chord_crnn.py'}],
              # The CRNN needs at least a few frames; 0.5 s is 5 frames.
              {'data.crop_frames': [max(4, round(s * chord_fps)) for s in SECONDS]}),
  )
