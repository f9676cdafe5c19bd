r"""Train, evaluate or predict with a config file: flags only, the work is in the library.

    python experiments/main.py --config=configs/onset_blstm.py --workdir=workdirs/onset
    python experiments/main.py --config=configs/onset_blstm.py:tiny --workdir=/tmp/w \
        --config.train.num_steps=100 --config.model.hidden_size=32
    python experiments/main.py --config=configs/onset_blstm.py --workdir=workdirs/onset --mode=eval
    python experiments/main.py --config=configs/onset_blstm.py --workdir=workdirs/onset \
        --mode=predict --input=song.mp3 --output=out/

Running the same training command again resumes from the latest checkpoint.
"""

import os
import re
import sys

# Config files import ``configs.base``: make the repository root importable.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position
from absl import logging  # pylint: disable=wrong-import-position
from ml_collections import config_flags  # pylint: disable=wrong-import-position

config_flags.DEFINE_config_file('config', None, 'Experiment config file (path[:args]).',
                                lock_config=True)
flags.DEFINE_string('workdir', None, 'Folder for checkpoints, logs, metrics and plots.')
flags.DEFINE_enum('mode', 'train', ['train', 'eval', 'predict'],
                  'train (and evaluate), eval (best/latest checkpoint), or predict.')
flags.DEFINE_string('input', None, 'predict: an audio file or a folder (searched recursively).')
flags.DEFINE_string('output', None, 'predict: folder for the output files.')
flags.mark_flags_as_required(['config', 'workdir'])
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not any(a.startswith(('--verbosity', '-v')) for a in sys.argv[1:]):
    # Orbax logs every save at INFO; keep the console to our progress lines.
    logging.set_verbosity(logging.WARNING)
  from mir_jax.train import experiment, run_config  # pylint: disable=g-import-not-at-top
  config = FLAGS.config
  workdir = os.path.expanduser(FLAGS.workdir)
  if FLAGS.mode == 'predict' and (not FLAGS.input or not FLAGS.output):
    raise app.UsageError('--mode=predict needs --input=PATH_OR_DIR and --output=DIR')
  try:
    if FLAGS.mode == 'train':
      experiment.train_and_evaluate(config, workdir)
    elif FLAGS.mode == 'eval':
      experiment.evaluate(config, workdir)
    else:
      from mir_jax import predict  # pylint: disable=g-import-not-at-top
      predict.predict(config, workdir, FLAGS.input, os.path.expanduser(FLAGS.output))
  except run_config.ConfigMismatchError as e:
    sys.exit(f'FATAL: {e}')  # the keys and both values say it all; no traceback


def parse_flags(argv):
  """absl flag parsing, with a one-line message for an unknown ``--config.*`` key."""
  try:
    return FLAGS(argv)
  except (AttributeError, KeyError) as e:
    text = str(e).replace('\\n', '\n').replace("\\'", "'")
    overrides = [a[2:].split('=', 1)[0] for a in argv[1:] if a.startswith('--config.')]
    names = re.findall(r"'([A-Za-z_][A-Za-z0-9_]*)'", text)
    bad = [o for o in overrides if names and names[0] in o.split('.')]
    hint = re.search(r'Did you mean "[^"]+"[^?]*\?', text)
    sys.exit(f'FATAL: unknown config key --{bad[0] if bad else text}'
             + (f' ({hint.group(0)})' if hint else '') + '; see the config file for the keys')


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
