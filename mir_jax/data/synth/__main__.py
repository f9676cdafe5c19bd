"""Writes a synthetic dataset folder.

  python -m mir_jax.data.synth --out DIR --num N --seed S --duration SECONDS \
      [--max-duration SECONDS] [--soundfont PATH] [--sample-rate 22050] \
      [--renderer soundfont|numpy] [--workers W]
"""

from __future__ import annotations

import argparse
import sys
import time

from mir_jax.data.synth.dataset import write_dataset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='python -m mir_jax.data.synth',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('--out', required=True, help='dataset folder to create')
    parser.add_argument('--num', type=int, required=True, help='number of tracks')
    parser.add_argument('--seed', type=int, required=True,
                        help='dataset seed; different seeds give disjoint tracks')
    parser.add_argument('--duration', type=float, default=30.0, help='seconds per track')
    parser.add_argument('--max-duration', type=float, default=None,
                        help='tracks of lengths drawn in [duration, max-duration] seconds')
    parser.add_argument('--soundfont', default=None,
                        help='.sf2 file (default: TimGM6mb.sf2 from pretty_midi)')
    parser.add_argument('--sample-rate', type=int, default=22050)
    parser.add_argument('--renderer', choices=('soundfont', 'numpy'), default='soundfont')
    parser.add_argument('--workers', type=int, default=None, help='default: all cores')
    parser.add_argument('--no-effects', action='store_true',
                        help='no reverb, noise or level variation')
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        manifest = write_dataset(args.out, args.num, args.seed, args.duration,
                                 soundfont=args.soundfont, sample_rate=args.sample_rate,
                                 renderer=args.renderer, workers=args.workers,
                                 effects=not args.no_effects, max_duration=args.max_duration)
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    wall = time.perf_counter() - start
    audio = sum(manifest.get('durations')
                or [manifest['settings']['duration']] * manifest['settings']['num'])
    print(f'{args.out}: {len(manifest["tracks"])} tracks, {audio:.0f} s of audio in '
          f'{wall:.1f} s ({audio / wall:.0f}x real time)', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
