"""Crash-safe writes: all or nothing."""

import os

import pytest

from mir_jax.atomic import atomic_open, atomic_write


def test_write_replaces_and_creates_folders(tmp_path):
  path = tmp_path / 'a' / 'b' / 'x.txt'
  atomic_write(path, 'one\n')
  atomic_write(path, 'two\n')
  assert path.read_text() == 'two\n'
  atomic_write(path, b'\x00\x01')
  assert path.read_bytes() == b'\x00\x01'
  assert os.listdir(path.parent) == ['x.txt']


def test_failure_mid_write_keeps_the_old_file_and_no_temp(tmp_path):
  path = tmp_path / 'data.bin'
  atomic_write(path, b'good')
  with pytest.raises(RuntimeError):
    with atomic_open(path, 'wb') as f:
      f.write(b'half')
      raise RuntimeError('killed')
  assert path.read_bytes() == b'good'
  assert os.listdir(tmp_path) == ['data.bin']
