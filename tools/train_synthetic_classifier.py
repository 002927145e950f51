"""Train the synthetic-set classifier that scores generated clips (class and event frames).

    python tools/train_synthetic_classifier.py [--resolution 32] [--num-frames 16]
        [--train-items 480] [--val-items 120] [--iters 300] [--seed 0]
        [--out work_dirs/synthetic_classifier/classifier.pth]

Renders real synthetic clips (``SyntheticSoundingVideo``, whose class and event frames are exact),
trains :class:`~pavdit.evaluation.detectors.synthetic_classifier.SyntheticClipClassifier` on them
with light corruptions (noise, blur) so that it judges imperfect clips by what they show, and
saves it with its held-out scores on clips of another seed: class accuracy, per-modality event
F1 and the event agreement of real clips. ``tools/test.py --classifier FILE`` then reports
``judge/class_accuracy`` and ``judge/event_agreement`` of generated samples.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tqdm import tqdm  # noqa: E402

from pavdit.data.synthetic import CLASSES, SyntheticSoundingVideo  # noqa: E402
from pavdit.evaluation.class_metric import event_agreement  # noqa: E402
from pavdit.evaluation.detectors.synthetic_classifier import SyntheticClipClassifier  # noqa: E402

WIDTH = 64


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train the synthetic-set classifier.')
    parser.add_argument('--resolution', type=int, default=32)
    parser.add_argument('--num-frames', type=int, default=16)
    parser.add_argument('--train-items', type=int, default=480)
    parser.add_argument('--val-items', type=int, default=120)
    parser.add_argument('--iters', type=int, default=300)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--lr', type=float, default=2e-3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='work_dirs/synthetic_classifier/classifier.pth')
    return parser.parse_args(argv)


def render(num_items: int, seed: int, resolution: int, num_frames: int) -> dict:
    """Clips of every class as stacked tensors: video (N, 3, T, H, W), audio (N, 1, T, 64, 16),
    label (N,), events (N, T) with 1 on the exact event frames."""
    dataset = SyntheticSoundingVideo(num_items=num_items, num_frames=num_frames,
                                     resolution=resolution, seed=seed)
    items = [dataset[i] for i in tqdm(range(num_items), desc=f'rendering (seed {seed})')]
    events = torch.zeros(num_items, num_frames)
    for row, item in enumerate(items):
        events[row, item['meta']['event_frames']] = 1
    return dict(video=torch.stack([i['video'] for i in items]),
                audio=torch.stack([i['audio'] for i in items]),
                label=torch.tensor([i['label'] for i in items]), events=events)


def corrupt(video: torch.Tensor, audio: torch.Tensor, generator: torch.Generator):
    """Noise on both, and a 3x3 spatial blur on half the videos: generated clips are rarely
    sharp, and a judge that needs crisp edges would score the renderer, not the content."""
    blurred = F.avg_pool3d(video, (1, 3, 3), 1, (0, 1, 1), count_include_pad=False)
    pick = torch.rand(len(video), 1, 1, 1, 1, generator=generator) < 0.5
    video = torch.where(pick, blurred, video)
    video = video + 0.05 * torch.randn(video.shape, generator=generator)
    audio = audio + 0.05 * torch.randn(audio.shape, generator=generator)
    return video.clamp(-1, 1), audio.clamp(-1, 1)


def losses(model, batch: dict) -> torch.Tensor:
    logits = model(batch['video'], batch['audio'])
    return (F.cross_entropy(logits['class'], batch['label'])
            + F.binary_cross_entropy_with_logits(logits['video_events'], batch['events'])
            + F.binary_cross_entropy_with_logits(logits['audio_events'], batch['events']))


@torch.no_grad()
def evaluate(model, data: dict) -> dict:
    """Held-out accuracy, event F1 of each head (exact frame) and event agreement."""
    label, video_events, audio_events = model.judge(data['video'], data['audio'])
    truth = data['events'].bool()
    scores = dict(accuracy=(label == data['label']).float().mean().item())
    for name, found in (('video', video_events), ('audio', audio_events)):
        hits = (found & truth).sum().item()
        scores[f'{name}_event_f1'] = 2 * hits / max(found.sum().item() + truth.sum().item(), 1)
    both, either = map(sum, zip(*(event_agreement(v, a)
                                  for v, a in zip(video_events, audio_events))))
    scores['event_agreement'] = both / either if either else 1.0
    return scores


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    train = render(args.train_items, args.seed, args.resolution, args.num_frames)
    val = render(args.val_items, args.seed + 10_000, args.resolution, args.num_frames)
    model = SyntheticClipClassifier(len(CLASSES), WIDTH)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.iters)
    progress = tqdm(range(args.iters), desc='training classifier')
    for _ in progress:
        rows = torch.randint(args.train_items, (args.batch_size,), generator=generator)
        batch = {k: v[rows] for k, v in train.items()}
        batch['video'], batch['audio'] = corrupt(batch['video'], batch['audio'], generator)
        loss = losses(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        progress.set_postfix(loss=f'{loss.item():.3f}')
    model.eval()
    scores = evaluate(model, val)
    record = dict(classes=list(CLASSES), width=WIDTH, resolution=args.resolution,
                  num_frames=args.num_frames, train_items=args.train_items,
                  val_items=args.val_items, iters=args.iters, seed=args.seed, **scores)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    temporary = f'{args.out}.tmp'
    torch.save(dict(state_dict=model.state_dict(), classifier=record), temporary)
    os.replace(temporary, args.out)  # atomic: a crash never leaves half a checkpoint
    print(f'synthetic classifier -> {args.out}: held-out accuracy {scores["accuracy"]:.3f}, '
          f'event F1 video {scores["video_event_f1"]:.3f} / audio {scores["audio_event_f1"]:.3f}, '
          f'event agreement of real clips {scores["event_agreement"]:.3f}')
    return record


if __name__ == '__main__':
    main()
