"""Shared defaults of every experiment config (not an experiment itself).

Experiment configs start from ``get_config()`` here and change what they need;
``parse_arg`` reads the ``file.py:tiny,key=value`` argument big_vision-style.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Parses 'tiny,variant=x' into a ConfigDict over ``defaults`` (flags become True).

  Values are converted to the type of their default; an unknown name is an error.
  """
  out = dict(defaults)
  for item in (arg or '').split(','):
    item = item.strip()
    if not item:
      continue
    name, has_value, value = item.partition('=')
    if name not in out:
      raise ValueError(f'unknown config argument {name!r}; known: {sorted(out)}')
    default = out[name]
    if not has_value:
      out[name] = True
    elif isinstance(default, bool):
      out[name] = value.lower() in ('1', 'true', 'yes')
    else:
      out[name] = type(default)(value) if default is not None else value
  return ml_collections.ConfigDict(out)


def get_config() -> ml_collections.ConfigDict:
  """Defaults for data, features, optimizer, training, checkpoints, eval and predict."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # seeds params init, dropout and data order; same seed + config = same run

  c.task = ml_collections.ConfigDict()  # task name and task options (set per experiment)
  c.model = ml_collections.ConfigDict()  # model name and hyperparameters (set per experiment)

  # Mirrors mir_jax.audio.features.FeatureConfig (built with FeatureConfig.from_dict).
  c.features = ml_collections.ConfigDict()
  c.features.kind = 'mel'  # 'stft', 'mel', 'cqt' or 'chroma'
  c.features.sample_rate = 22050  # Hz; audio is resampled to this rate
  c.features.n_fft = 2048  # FFT/window size in samples
  c.features.n_ffts = ()  # several frame sizes stacked as channels; () means (n_fft,)
  c.features.hop_length = 441  # samples between frames (441 at 22050 Hz = 50 fps)
  c.features.window = 'hann'  # scipy window name
  c.features.n_mels = 80  # mel bands
  c.features.fmin = 27.5  # Hz, lowest mel edge / lowest CQT bin
  c.features.fmax = config_dict.FieldReference(None, field_type=float)  # Hz; None = sr / 2
  c.features.bins_per_octave = 12  # CQT resolution
  c.features.n_bins = 84  # CQT bins
  c.features.log = 'db'  # magnitude compression: 'none', 'db' or 'log1p'
  c.features.log1p_scale = 1.0  # C in log(1 + C * x)
  c.features.top_db = config_dict.FieldReference(80.0, field_type=float)  # dB range kept; None keeps all
  c.features.whitening = False  # adaptive spectral whitening
  c.features.whitening_memory_s = 10.0  # whitening peak memory in seconds
  c.features.lcn = False  # local contrast normalisation
  c.features.lcn_size = (9, 9)  # LCN neighbourhood (frames, bins)

  c.data = ml_collections.ConfigDict()  # datasets, batching and the feature cache
  c.data.root = ''  # where synthetic sets are rendered; '' = ~/.cache/mir_jax/data
  c.data.train_dir = ''  # dataset folder to train on (README layout); '' = render synthetic
  c.data.eval_dir = ''  # dataset folder to evaluate on; '' = render synthetic
  c.data.cache_dir = ''  # feature cache folder; '' = <root>/features, 'none' = no cache
  c.data.batch_size = 16  # global batch size (split over hosts and devices)
  c.data.crop_frames = 500  # frames per training example (random crop)
  c.data.eval_batch_size = 8  # tracks (or chunks) per eval batch, global
  c.data.eval_chunk_frames = 0  # eval in chunks of this many frames; 0 = whole tracks
  c.data.pad_to_multiple = 256  # pad eval lengths to a multiple (bounds recompiles)
  c.data.num_threads = 2  # grain reader threads
  c.data.synth = ml_collections.ConfigDict()  # the synthetic datasets rendered when no folder is given
  c.data.synth.num_train = 64  # synthetic training tracks
  c.data.synth.num_eval = 16  # synthetic evaluation tracks
  c.data.synth.train_seed = 0  # composer seed of the training set
  c.data.synth.eval_seed = 1000  # composer seed of the evaluation set (disjoint tracks)
  c.data.synth.duration = 20.0  # seconds per synthetic track
  # (shortest, longest) s: training tracks of lengths drawn uniformly per track, so a
  # sequence model does not learn one length; () = every training track lasts duration.
  # The eval set keeps duration.
  c.data.synth.train_durations = ()
  c.data.synth.sample_rate = 22050  # Hz of the rendered audio
  c.data.synth.renderer = 'soundfont'  # 'soundfont' (General MIDI) or 'numpy' (fast, plain)

  c.optimizer = ml_collections.ConfigDict()  # Optax optimizer, schedule, clipping, weight decay
  c.optimizer.name = 'adam'  # 'adam', 'adamw' or 'sgd'
  c.optimizer.learning_rate = 1e-3  # peak learning rate
  c.optimizer.schedule = 'warmup_cosine'  # 'constant', 'warmup_cosine' or 'step'
  c.optimizer.warmup_steps = 100  # linear warmup from 0
  c.optimizer.decay_steps = 0  # cosine decay length; 0 = train.num_steps
  c.optimizer.end_learning_rate = 0.0  # learning rate at the end of the cosine
  c.optimizer.step_every = 1000  # 'step' schedule: decay every this many steps
  c.optimizer.step_factor = 0.1  # 'step' schedule: multiply by this
  c.optimizer.b1 = 0.9  # Adam beta1
  c.optimizer.b2 = 0.999  # Adam beta2
  c.optimizer.eps = 1e-8  # Adam epsilon
  c.optimizer.momentum = 0.9  # SGD momentum (0 = plain SGD)
  c.optimizer.nesterov = False  # SGD Nesterov momentum
  c.optimizer.weight_decay = 0.0  # decoupled (adamw) or L2 (adam, sgd); skips biases and norms
  c.optimizer.clip_norm = 1.0  # clip gradients by global norm (RNNs need it); 0 = off

  c.train = ml_collections.ConfigDict()  # loop length, logging, evaluation interval, precision
  c.train.num_steps = 5000  # optimizer steps
  c.train.log_every = 50  # console / TensorBoard / metrics.jsonl interval
  c.train.eval_every = 1000  # evaluation interval (also at the end); 0 = only at the end
  c.train.compute_dtype = 'float32'  # activations: 'float32' or 'bfloat16' (TPU); params stay f32
  c.train.distributed = False  # call jax.distributed.initialize() (multi-host)
  # CPU: split the machine into this many XLA host devices (0: one per core) and train data
  # parallel over them; the fused LSTM/GRU layers then run one loop per core (README, Speed)
  c.train.host_devices = 1
  # glibc: one arena that keeps its memory, so XLA's per-step buffers reuse pages instead of
  # faulting fresh ones in (mir_jax/train/malloc.py; README, Speed); False = glibc's defaults
  c.train.heap_allocator = True
  c.train.tensorboard = True  # write TensorBoard event files under workdir/tensorboard

  c.checkpoint = ml_collections.ConfigDict()  # Orbax checkpoints: interval, retention, best metric
  c.checkpoint.every = 500  # save every this many steps (and at evals and the end)
  c.checkpoint.max_to_keep = 3  # latest checkpoints kept (plus the best)
  c.checkpoint.best_metric = ''  # eval metric ranking checkpoints; '' = the task's
  c.checkpoint.best_mode = 'max'  # 'max' or 'min' for best_metric
  c.checkpoint.async_save = True  # write checkpoints in the background

  c.eval = ml_collections.ConfigDict()  # what --mode=eval evaluates
  c.eval.split = 'eval'  # --mode=eval evaluates on 'eval' or 'train'
  c.eval.checkpoint = 'best'  # --mode=eval/predict restore 'best' or 'latest'
  c.eval.num_figures = 3  # eval PNGs of the first tracks: labels over the spectrogram, or attention maps
  # --mode=eval: '' writes eval_metrics.json anew; 'len20_' merges the metrics, renamed
  # len20_<name>, into the existing file (e.g. scoring a trained run on other data).
  c.eval.metrics_prefix = ''

  c.predict = ml_collections.ConfigDict()  # --mode=predict chunking
  c.predict.chunk_seconds = 60.0  # long files are processed in chunks this long
  c.predict.overlap_seconds = 10.0  # overlap between chunks (half from each side)
  c.predict.batch_size = 8  # chunks per forward pass

  c.debug = ml_collections.ConfigDict()  # test hooks
  c.debug.kill_at_step = -1  # tests: SIGKILL the process after this step; -1 = never
  return c
