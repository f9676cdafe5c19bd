"""Pure-functional neural network pieces: functions of params and arrays only."""

from mir_jax.nn.cells import CELLS, Cell, get_cell
from mir_jax.nn.recurrent import (bidirectional, bidirectional_init, lengths_to_mask,
                                  reverse_sequences, rnn, stack, stack_init)
