"""Evaluation figures: one readable PNG per task, whose overlay follows the prediction."""

import numpy as np
import pytest
from PIL import Image

from mir_jax.data.datasets import Track
from mir_jax.tasks import build_task
from mir_jax.tasks.figures import write_prediction_figure


def _track():
  return Track(track_id='song', audio_path='song.wav', onsets=np.array([0.5, 1.0, 2.5]),
               chord_intervals=np.array([[0.0, 1.5], [1.5, 4.0]]),
               chord_labels=['C:maj', 'G:maj'], key='C major',
               tags=np.eye(1, 60, 3, dtype=np.int8)[0])


def _task_and_predictions(name):
  cfg = {'name': name}
  if name == 'tagging':
    from mir_jax.data.synth.labels import TAG_NAMES  # pylint: disable=g-import-not-at-top
    cfg['tag_names'] = tuple(TAG_NAMES)
  task = build_task(cfg)
  n = getattr(task, 'num_outputs', 1)
  return task, {
      'onset': (np.array([0.5, 1.0, 2.5]), np.array([3.5])),
      'chord': ((np.array([[0.0, 1.5], [1.5, 4.0]]), ['C:maj', 'G:maj']),
                (np.array([[0.0, 4.0]]), ['A:min'])),
      'key': ('C major', 'F# minor'),
      'tagging': (np.eye(1, n, 3)[0] * 0.9, np.full(n, 0.6)),
  }[name]


@pytest.mark.parametrize('name', ['onset', 'chord', 'key', 'tagging'])
def test_figure_is_a_png_that_shows_the_prediction(tmp_path, name):
  task, (good, bad) = _task_and_predictions(name)
  features = np.random.default_rng(0).normal(size=(200, 40, 2)).astype(np.float32)
  a = write_prediction_figure(str(tmp_path / 'a.png'), task, features, 50.0, good, _track())
  b = write_prediction_figure(str(tmp_path / 'b.png'), task, features, 50.0, bad, _track())
  img_a, img_b = np.asarray(Image.open(a).convert('RGB')), np.asarray(Image.open(b).convert('RGB'))
  assert img_a.shape == img_b.shape and img_a.shape[1] == 1100  # 11 in at 100 dpi
  assert img_a.std() > 10  # a spectrogram, not a blank page
  # A different prediction over the same spectrogram and reference draws a different picture.
  assert np.mean(np.any(img_a != img_b, axis=-1)) > 1e-4
  assert not list(tmp_path.glob('.tmp-*'))  # written atomically


def test_onset_overlay_marks_the_predicted_times(tmp_path):
  task, _ = _task_and_predictions('onset')
  features = np.zeros((200, 40), np.float32)
  track = _track()
  track.onsets = np.array([])
  none = np.asarray(Image.open(write_prediction_figure(
      str(tmp_path / 'n.png'), task, features, 50.0, np.array([]), track)).convert('RGB'), int)
  one = np.asarray(Image.open(write_prediction_figure(
      str(tmp_path / 'o.png'), task, features, 50.0, np.array([2.0]), track)).convert('RGB'), int)
  cols = np.nonzero(np.any(np.abs(one - none).sum(-1) > 60, axis=0))[0]
  # The legend moves too; the line at 2 s of a 4 s axis is the changed column nearest the middle.
  assert cols.size and np.min(np.abs(cols - 550)) < 60


def test_unknown_task_is_an_error(tmp_path):
  task, _ = _task_and_predictions('onset')
  task.name = 'beats'
  with pytest.raises(ValueError, match='beats'):
    write_prediction_figure(str(tmp_path / 'x.png'), task, np.zeros((10, 4)), 10.0, [], _track())
