"""Generate sounding videos with a trained PAV-DiT: one .mp4 (video + audio) and a PNG per sample.

    python tools/sample.py CONFIG CHECKPOINT [--prompt TEXT ...] [--label N ...]
        [--num-samples N] [--steps S] [--cfg-scale W] [--seed S] [--out DIR]
        [--mode joint|audio_to_video|video_to_audio --source CLIP.mp4] [--device cuda]
        [--precision bf16|fp32] [--compile [MODE]]

Prompts (text models) or labels (class models) are cycled over the samples. The audio is the
generated mel frames inverted with Griffin-Lim. audio_to_video / video_to_audio take the known
modality from ``--source`` (encoded with the model's autoencoder, the other modality zeroed so that
it cannot leak in) and generate the other one.
"""
import argparse
import itertools
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from tqdm import tqdm  # noqa: E402

from pavdit.data.frame_transforms import letterbox  # noqa: E402
from pavdit.data.media import read_clip  # noqa: E402
from pavdit.engine.checkpoints import load_model_for_tool  # noqa: E402
from pavdit.engine.sampling import video_like_audio, write_sample  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Sample sounding videos from PAV-DiT.')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--prompt', nargs='+', default=None, help='text prompt(s)')
    parser.add_argument('--label', type=int, nargs='+', default=None, help='class label(s)')
    parser.add_argument('--num-samples', type=int, default=4)
    parser.add_argument('--steps', type=int, default=None, help="default: the scheduler's")
    parser.add_argument('--cfg-scale', type=float, default=None, help="default: the model's")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--mode', choices=['joint', 'audio_to_video', 'video_to_audio'],
                        default='joint')
    parser.add_argument('--source', help='.mp4 giving the known modality (a2v / v2a)')
    parser.add_argument('--out', default='work_dirs/samples')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--precision', choices=['bf16', 'fp32'], default=None,
                        help='the networks\' precision (bf16 autocast; the sampler state, '
                             'decoding to sound and the files stay fp32); default: bf16 on '
                             'CUDA, fp32 on CPU')
    parser.add_argument('--compile', nargs='?', const='default', default=None, metavar='MODE',
                        help='torch.compile the STDiT (MODE: default, reduce-overhead = with '
                             'CUDA graphs, max-autotune); the first batch pays for compiling')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return parser.parse_args(argv)


def known_latents(model, audio_transform, source: str, count: int, mode: str) -> dict:
    """Encode the --source clip (resized to the model's size) without its hidden modality (see
    ``PAVDiT.encode_known``) and repeat the planes ``count`` times."""
    frames_t, height, width = model.video_size
    frames, waveform = read_clip(source, 0.0, frames_t, audio_transform.fps,
                                 audio_transform.sample_rate)
    video = torch.from_numpy(letterbox(frames, (height, width))).permute(3, 0, 1, 2)
    video = video.float() / 127.5 - 1
    audio = audio_transform(torch.from_numpy(waveform))
    latents = model.encode_known(video[None].to(model.device), audio[None].to(model.device), mode)
    return {k: v.expand(count, *v.shape[1:]) for k, v in latents.items()}


def main(argv=None) -> None:
    args = parse_args(argv)
    model, cfg = load_model_for_tool(args.config, args.checkpoint, args.device, args.cfg_options)
    if args.compile:
        model.compile_generators(mode=args.compile)
    bf16 = (args.precision or ('bf16' if args.device.startswith('cuda') else 'fp32')) == 'bf16'
    audio_transform = video_like_audio(cfg)
    prompts = itertools.cycle(args.prompt) if args.prompt else None
    labels = itertools.cycle(args.label) if args.label else None
    generator = torch.Generator(args.device).manual_seed(args.seed)
    records, done = [], 0
    progress = tqdm(total=args.num_samples, desc='sampling', unit='clip')
    while done < args.num_samples:
        count = min(args.batch_size, args.num_samples - done)
        texts = [next(prompts) for _ in range(count)] if prompts else None
        ids = torch.tensor([next(labels) for _ in range(count)]) if labels else None
        known = (known_latents(model, audio_transform, args.source, count, args.mode)
                 if args.mode != 'joint' else None)
        with torch.autocast(torch.device(args.device).type, torch.bfloat16, enabled=bf16):
            outputs = model.sample(count, labels=ids, texts=texts, mode=args.mode,
                                   known_latents=known, num_steps=args.steps,
                                   guidance_scale=args.cfg_scale, generator=generator)
        for i, output in enumerate(outputs):
            index = done + i
            output.update(video=output['video'].float(), audio=output['audio'].float())
            condition = texts[i] if texts else (int(ids[i]) if ids is not None else '')
            path, _ = write_sample(output, audio_transform,
                                   osp.join(args.out, f'sample_{index:04d}'),
                                   title=f'sample {index}: {condition!r} ({args.mode})')
            records.append(dict(file=path.name, condition=condition, seed=args.seed,
                                mode=args.mode))
        done += count
        progress.update(count)
    progress.close()
    with open(osp.join(args.out, 'samples.json'), 'w') as f:
        json.dump(records, f, indent=1)
    print(f'wrote {args.num_samples} samples (.mp4 with sound + .png) to {args.out}')


if __name__ == '__main__':
    main()
