"""Fixtures shared by the test modules."""

import os

import pytest


@pytest.fixture
def tree_bytes():
  """``read(root)``: every file under ``root`` (relative path) with its bytes."""

  def read(root):
    out = {}
    for folder, _, files in os.walk(root):
      for name in files:
        path = os.path.join(folder, name)
        with open(path, 'rb') as f:
          out[os.path.relpath(path, root)] = f.read()
    return out

  return read
