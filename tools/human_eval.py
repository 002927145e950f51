"""Human evaluation of sounding videos (Table 4): build a blinded study, serve it, score it.

    python tools/human_eval.py build --method NAME=DIR [--method NAME=DIR ...] --per-method N
        --out STUDY [--seed 0] [--title TEXT] [--link]
    python tools/human_eval.py serve STUDY [--port 8000] [--host 127.0.0.1]
    python tools/human_eval.py score STUDY [EXTRA.json ...] [--bootstrap 10000] [--seed 0]

``build`` draws N .mp4 files (with sound) per method, blinded as ``STUDY/media/item_NNN.mp4``,
writes the rating page ``STUDY/index.html`` (+ app.js, style.css; works offline, also opened as a
file) and the private key ``STUDY/study.json``. ``serve`` serves the page on loopback and stores
each submission as a new file in ``STUDY/responses/``. ``score`` prints per method the mean AQ /
VQ / A-V with 95 % bootstrap intervals (over items) and Krippendorff's ordinal alpha, and writes
``STUDY/scores.md`` and ``STUDY/scores.json``. Formats: pavdit/evaluation/human_study/.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from pavdit.evaluation.human_study.build import (DEFAULT_TITLE, build_study,  # noqa: E402
                                                 parse_method)
from pavdit.evaluation.human_study.scoring import (format_table, score_study,  # noqa: E402
                                                   write_scores)
from pavdit.evaluation.human_study.server import serve  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Human evaluation (Table 4): AQ, VQ, A-V.')
    commands = parser.add_subparsers(dest='command', required=True)

    build = commands.add_parser('build', help='write a blinded study folder')
    build.add_argument('--method', action='append', required=True, metavar='NAME=DIR',
                       help='a method and the folder of its .mp4 samples (searched '
                            'recursively); repeat for each method')
    build.add_argument('--per-method', type=int, required=True, metavar='N',
                       help='samples drawn per method')
    build.add_argument('--out', required=True, help='the new study folder')
    build.add_argument('--seed', type=int, default=0,
                       help='drives the draws, the item numbering and the raters\' orders')
    build.add_argument('--title', default=DEFAULT_TITLE, help='shown on the page')
    build.add_argument('--link', action='store_true',
                       help='hard-link the samples instead of copying them')

    serve_cmd = commands.add_parser('serve', help='serve a study on loopback')
    serve_cmd.add_argument('study', help='study folder')
    serve_cmd.add_argument('--port', type=int, default=8000, help='0 picks a free port')
    serve_cmd.add_argument('--host', default='127.0.0.1', help='a loopback address')

    score = commands.add_parser('score', help='score the submissions of a study')
    score.add_argument('study', help='study folder')
    score.add_argument('extra', nargs='*', help='more submission files (e.g. downloaded ones)')
    score.add_argument('--bootstrap', type=int, default=10_000, metavar='B',
                       help='bootstrap resamples for the 95%% intervals')
    score.add_argument('--seed', type=int, default=0, help='bootstrap seed')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        if args.command == 'build':
            methods = [parse_method(spec) for spec in args.method]
            key = build_study(methods, args.per_method, args.out, seed=args.seed,
                              title=args.title, link=args.link)
            print(f'study {key["study_id"]}: {len(key["items"])} items '
                  f'({args.per_method} per method x {len(methods)}) in {args.out}\n'
                  f'serve it:  python tools/human_eval.py serve {args.out}\n'
                  f'or open {osp.join(args.out, "index.html")} as a file (ratings are then '
                  f'downloaded); keep {osp.join(args.out, "study.json")} from the raters.')
        elif args.command == 'serve':
            serve(args.study, args.host, args.port)
        else:
            scores = score_study(args.study, args.extra, args.bootstrap, args.seed)
            markdown, data = write_scores(args.study, scores)
            print(format_table(scores), end='')
            for path in scores['superseded']:
                print(f'superseded (an earlier submission of the same rater): {path}')
            print(f'written: {markdown}, {data}')
    except (ValueError, OSError) as error:  # StudyError, SubmissionError are ValueErrors
        sys.exit(f'human_eval.py {args.command}: error: {error}')


if __name__ == '__main__':
    main()
