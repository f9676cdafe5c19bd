r"""Onset detection with a bidirectional LSTM on log-mel frames (the default experiment).

    python experiments/main.py --config=configs/onset_blstm.py --workdir=workdirs/onset_blstm

Renders a synthetic training set and a disjoint evaluation set (different
composer seeds) under ``config.data.root`` (default ``~/.cache/mir_jax/data``;
rendered once, reused after), trains, evaluates with mir_eval at ±50/±25 ms
and then ``--mode=predict`` writes ``.onsets`` files:

    python experiments/main.py --config=configs/onset_blstm.py --workdir=workdirs/onset_blstm \
        --mode=predict --input=~/.cache/mir_jax/data/<eval set>/audio --output=/tmp/onsets

Arguments (``configs/onset_blstm.py:tiny``): ``tiny`` shrinks everything (6
short numpy-rendered tracks, a small model, 30 steps) for tests and quick looks;
``small`` is the ablation size (same data, hidden 64, 2 s crops, 500 steps).
"""

from configs import base


def get_config(arg: str | None = None):
  """Onset BLSTM config; ``arg`` is 'tiny' or ''."""
  args = base.parse_arg(arg, tiny=False, small=False)
  c = base.get_config()

  c.task.name = 'onset'  # frame-wise onset detection
  c.task.widen = 1  # neighbour frames (each side) with a soft target
  c.task.widen_value = 0.5  # soft target of the widened frames
  c.task.pos_weight = 3.0  # loss weight of onset frames (they are rare)
  c.task.threshold = 0.4  # peak-picking threshold on the sigmoid activation
  c.task.smooth = 0.0  # seconds of Hamming smoothing before peak picking
  c.task.pre_avg = 0.0  # seconds of moving average before the frame
  c.task.post_avg = 0.0  # seconds of moving average after the frame
  c.task.pre_max = 0.03  # seconds of moving maximum before the frame
  c.task.post_max = 0.03  # seconds of moving maximum after the frame
  c.task.combine = 0.03  # onsets closer than this (seconds) are merged

  c.model.name = 'blstm'  # frame model: projection + RecurrentStack + dense
  c.model.cell = 'lstm'  # 'lstm', 'gru', 'rnn_tanh' or 'rnn_relu'
  c.model.hidden_size = 128  # units per direction (64 overfits 64 tracks at F 0.88)
  c.model.num_layers = 2  # recurrent layers
  c.model.bidirectional = True  # both directions (offline detection)
  c.model.merge = 'concat'  # how directions are merged: 'concat' or 'sum'
  c.model.input_projection = 0  # dense layer width before the RNN; 0 = none
  c.model.dropout = 0.0  # dropout between layers
  c.model.residual = False  # residual connections between recurrent layers
  c.model.unroll = 1  # scan unroll factor

  # 100 fps, 3 stacked frame sizes as channels (Böck's onset input).
  c.features.kind = 'mel'  # log-mel spectrogram
  c.features.hop_length = 220  # 22050 / 220 ≈ 100 fps
  c.features.n_fft = 2048  # the middle frame size
  c.features.n_ffts = (1024, 2048, 4096)  # three frame sizes stacked as channels
  c.features.n_mels = 40  # mel bands per frame size

  c.data.crop_frames = 400  # 4 s crops
  c.data.synth.num_train = 192  # synthetic training tracks (64 overfit: eval loss rose after 1k steps)
  c.data.eval_chunk_frames = 0  # whole tracks
  c.optimizer.learning_rate = 2e-3  # peak Adam learning rate
  c.train.num_steps = 4000  # optimizer steps
  c.train.eval_every = 1000  # mir_eval F-measure every 1000 steps

  if args.small:  # ablation size: one run in about a minute on one core
    c.model.hidden_size = 64
    c.data.crop_frames = 200  # 2 s
    c.train.num_steps = 500
    c.train.eval_every = 0  # one evaluation, at the end
    c.checkpoint.every = 250
    c.eval.num_figures = 0
  if args.tiny:
    c.data.synth.num_train = 6
    c.data.synth.num_eval = 2
    c.data.synth.duration = 6.0
    c.data.synth.renderer = 'numpy'
    c.features.n_ffts = ()
    c.features.n_fft = 1024
    c.features.n_mels = 24
    c.model.hidden_size = 16
    c.model.num_layers = 1
    c.data.batch_size = 4
    c.data.crop_frames = 200
    c.data.eval_batch_size = 2
    c.data.pad_to_multiple = 64
    c.optimizer.learning_rate = 1e-2
    c.optimizer.warmup_steps = 5
    c.train.num_steps = 30
    c.train.log_every = 10
    c.train.eval_every = 0
    c.checkpoint.every = 10
    c.predict.chunk_seconds = 4.0
    c.predict.overlap_seconds = 1.0
  return c
