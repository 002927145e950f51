"""A local web page for sampling a trained PAV-DiT: type a prompt (or pick a class), set the steps,
the guidance scale and the seed, press Generate, watch and hear the clip.

    python tools/serve.py CONFIG CHECKPOINT [--host 127.0.0.1] [--port 8000] [--device cuda]
        [--out work_dirs/serve] [--precision bf16|fp32] [--allow-remote]

The model is loaded once; each generation draws one clip as tools/sample.py does and writes
``OUT/clip_NNNN.mp4`` (video + Griffin-Lim sound), ``.png`` (frames above mel frames) and ``.json``
(its request). The server listens on loopback only unless ``--allow-remote`` is given with another
``--host``. Routes and the JSON API: pavdit/engine/sampling_server.py.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402

from pavdit.engine.sampling_server import ClipSampler, check_host, serve  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Serve a local page that samples sounding '
                                                 'videos from PAV-DiT.')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--host', default='127.0.0.1',
                        help='loopback (127.0.0.1, ::1, localhost) unless --allow-remote')
    parser.add_argument('--port', type=int, default=8000, help='0 picks a free port')
    parser.add_argument('--allow-remote', action='store_true',
                        help='allow a non-loopback --host: anyone who reaches it can run the '
                             'model and read the clips (there is no login)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--out', default='work_dirs/serve', help='where the clips are written')
    parser.add_argument('--precision', choices=['bf16', 'fp32'], default=None,
                        help="the networks' precision; default: bf16 on CUDA, fp32 on CPU")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        check_host(args.host, args.allow_remote)  # before the slow model load
    except ValueError as error:
        sys.exit(f'serve.py: error: {error}')
    sampler = ClipSampler.from_checkpoint(args.config, args.checkpoint, args.device, args.out,
                                          args.cfg_options, args.precision)
    serve(sampler, args.host, args.port, args.allow_remote)


if __name__ == '__main__':
    main()
