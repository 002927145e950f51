"""Measure how much of the hidden modality reaches audio-to-video / video-to-audio samples.

    python tools/measure_leak.py CONFIG CHECKPOINT [--num-clips 24] [--seed 5000]
        [--steps S] [--classifier FILE] [--out work_dirs/leak]

On held-out synthetic clips (``SyntheticSoundingVideo`` of another seed than training), each
mode is sampled twice with the same noise: with the known modality encoded as
``PAVDiT.encode_known`` does it (the hidden input zeroed, the default of tools/sample.py) and, as
an oracle, encoded together with the real hidden input. For the generated (hidden) modality it
reports the PSNR to its own clip's hidden truth and the mean PSNR to the truths of the other clips
of its class; the difference ("own-clip advantage", dB) is what the sample knows of its clip beyond
what its class shares (the class is given to conditional models). ``known_plane_change`` is the
relative L2 change of the known modality's planes between the two encodings: how much of the
hidden input GCM-Attn writes into them. With ``--classifier`` it also reports the synthetic-set judge's
class accuracy and event agreement of the returned clips. Writes ``leak.json`` and ``leak.md``.
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402

from pavdit.data.collate import sounding_video_collate  # noqa: E402
from pavdit.data.synthetic import SyntheticSoundingVideo  # noqa: E402
from pavdit.engine.checkpoints import load_model_for_tool  # noqa: E402
from pavdit.evaluation.class_metric import SyntheticClassifierMetric  # noqa: E402

HIDDEN = {'audio_to_video': 'video', 'video_to_audio': 'audio'}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Measure the hidden-modality leak of a2v/v2a.')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--num-clips', type=int, default=24)
    parser.add_argument('--seed', type=int, default=5000, help='seed of the held-out clips')
    parser.add_argument('--steps', type=int, default=None, help="default: the scheduler's")
    parser.add_argument('--classifier', help='synthetic-set classifier (.pth) to judge samples')
    parser.add_argument('--out', default='work_dirs/leak')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = parser.parse_args(argv)
    if args.num_clips < 12:
        parser.error('--num-clips must be at least 12 (two clips of each of the 6 classes: the '
                     'advantage compares clips of one class)')
    if args.classifier and not osp.isfile(args.classifier):
        parser.error(f'--classifier {args.classifier}: no such file')
    return args


def psnr_matrix(generated: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """(N, N) PSNR (dB, signals in [-1, 1]) of generated clip i against true clip j."""
    error = ((generated[:, None] - truth[None]) ** 2).flatten(2).mean(-1)
    return 10 * torch.log10(4.0 / error.clamp_min(1e-12))


def main(argv=None) -> dict:
    args = parse_args(argv)
    model, cfg = load_model_for_tool(args.config, args.checkpoint, args.device, {})
    frames, height, width = model.video_size
    clips = SyntheticSoundingVideo(args.num_clips, frames, (height, width), cfg.get('fps', 10),
                                   cfg.get('sample_rate', 16000), seed=args.seed)
    batch = sounding_video_collate([clips[i] for i in range(len(clips))])
    video, audio = batch['video'].to(args.device), batch['audio'].to(args.device)
    # A conditional model gets each clip's class (as a label or as the dataset's prompt; sample()
    # uses whichever its conditioner takes), so the class counts as shared, not leaked.
    condition = dict(labels=batch['label'], texts=batch['text']) if model.conditioner else {}
    results = {}
    for mode, hidden in HIDDEN.items():
        for encoding in ('hidden zeroed', 'hidden real (oracle)'):
            known = (model.encode_known(video, audio, mode) if encoding == 'hidden zeroed'
                     else model.autoencoder.encode(video, audio))
            outputs = model.sample(len(clips), **condition, mode=mode, known_latents=known,
                                   num_steps=args.steps, progress=True,
                                   generator=torch.Generator(args.device).manual_seed(0))
            generated = torch.stack([o[hidden] for o in outputs]).float().cpu()
            psnr = psnr_matrix(generated, batch[hidden].float())
            own = psnr.diagonal()
            same_class = (batch['label'][:, None] == batch['label'][None]).float()
            same_class.fill_diagonal_(0)
            others = (psnr * same_class).sum(1) / same_class.sum(1)
            given = 'audio' if hidden == 'video' else 'video'
            honest = model.encode_known(video, audio, mode)
            change = torch.stack([(known[k] - honest[k]).flatten(1).norm(dim=1)
                                  / honest[k].flatten(1).norm(dim=1).clamp_min(1e-12)
                                  for k in known if k.startswith(given)])
            row = dict(known_plane_change=float(change.mean()), own_psnr=float(own.mean()),
                       same_class_psnr=float(others.mean()),
                       own_clip_advantage_db=float((own - others).mean()))
            if args.classifier:
                metric = SyntheticClassifierMetric(args.classifier)
                metric.process(None, [dict(video=o['video'].cpu(), audio=o['audio'].cpu(),
                                           class_name=m['class_name'])
                                      for o, m in zip(outputs, batch['meta'])])
                judged = metric.compute_metrics(metric.results)
                row.update(class_accuracy=judged['class_accuracy'],
                           event_agreement=judged['event_agreement'])
            results[f'{mode}, {encoding}'] = row
            print(f'{mode}, {encoding}: ' + ', '.join(f'{k} {v:.3f}' for k, v in row.items()))
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'leak.json'), 'w') as f:
        json.dump(results, f, indent=1)
    columns = list(next(iter(results.values())))
    lines = ['| mode, known modality encoded with | ' + ' | '.join(columns) + ' |',
             '|---' * (len(columns) + 1) + '|']
    lines += [f'| {name} | ' + ' | '.join(f'{row[c]:.3f}' for c in columns) + ' |'
              for name, row in results.items()]
    with open(osp.join(args.out, 'leak.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return results


if __name__ == '__main__':
    main()
