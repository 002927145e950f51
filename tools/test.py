"""Evaluate a checkpoint with the metrics of its config; write JSON and a markdown table.

    python tools/test.py CONFIG CHECKPOINT [--num-samples 16] [--steps S] [--cfg-scale W]
        [--split val] [--out DIR] [--classifier FILE] [--cfg-options key=value ...]

- A generator (PAVDiT): samples ``--num-samples`` clips (prompts / labels cycling over the
  dataset's classes, "a video of <class>"), decodes them, inverts their audio with Griffin-Lim and
  evaluates ``test_evaluator`` (default: synchronisation - AV-Align, audio-video offset, and event
  precision / recall against the synthetic set's ground truth when the dataset has it; add
  FVDMetric / KVDMetric / FADMetric with detector weights for Table 1).
- ``--classifier FILE`` (the synthetic set only): also the class accuracy of the clips against
  their prompted class and their audio-visual event agreement, judged by the classifier of
  tools/train_synthetic_classifier.py (``judge/*``).
- An autoencoder (MDSA): reconstructs ``--num-samples`` clips of the ``--split`` set and evaluates
  ``test_evaluator`` (default: ReconstructionMetric; add ReconstructionFVDMetric for rFVD / rKVD).
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from mmengine.evaluator import Evaluator  # noqa: E402
from tqdm import tqdm  # noqa: E402

from pavdit.data import read_items, sounding_video_collate  # noqa: E402
from pavdit.engine.checkpoints import checkpoint_meta, load_model_for_tool  # noqa: E402
from pavdit.registry import DATASETS  # noqa: E402
from pavdit.engine.sampling import video_like_audio  # noqa: E402

GENERATOR_DEFAULT = [dict(type='SyncMetric')]
AUTOENCODER_DEFAULT = [dict(type='ReconstructionMetric'), dict(type='SyncMetric')]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a pavdit checkpoint.')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--num-samples', type=int, default=16)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--steps', type=int, default=None)
    parser.add_argument('--cfg-scale', type=float, default=None)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--split', choices=['train', 'val'], default='val',
                        help='autoencoder: the clips to reconstruct')
    parser.add_argument('--out', default=None, help='default: <checkpoint dir>/test')
    parser.add_argument('--classifier', default=None,
                        help='synthetic-set classifier (tools/train_synthetic_classifier.py): also '
                             'report class accuracy and event agreement of the clips')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={})
    return parser.parse_args(argv)


def generated_batches(model, cfg, args, audio_transform):
    """Sample in batches -> lists of metric samples (video, waveform, fps, sample rate, label)."""
    classes = training_classes(args.checkpoint, cfg)
    generator = torch.Generator(args.device).manual_seed(args.seed)
    for start in range(0, args.num_samples, args.batch_size):
        count = min(args.batch_size, args.num_samples - start)
        labels = torch.tensor([(start + i) % max(len(classes), 1) for i in range(count)])
        texts = [f'a video of {classes[int(label)]}' if classes else '' for label in labels]
        outputs = model.sample(count, labels=labels, texts=texts, num_steps=args.steps,
                               guidance_scale=args.cfg_scale, generator=generator)
        yield [dict(video=o['video'].cpu(), audio=o['audio'].cpu(),
                    waveform=audio_transform.inverse(o['audio'].float().cpu()),
                    fps=audio_transform.fps, sample_rate=audio_transform.sample_rate,
                    text=text, class_name=classes[int(label)] if classes else None)
                for o, text, label in zip(outputs, texts, labels)]


def training_classes(checkpoint: str, cfg) -> list:
    """Class names of the training data (for prompts): what the Runner stored in the checkpoint
    (``meta.dataset_meta``), else the config's dataset."""
    stored = (checkpoint_meta(checkpoint).get('dataset_meta') or {}).get('classes')
    if stored:
        return list(stored)
    return list(DATASETS.build(cfg.train_dataloader.dataset).metainfo.get('classes', ()))


def reconstructed_batches(model, cfg, args, audio_transform):
    dataset = DATASETS.build(cfg[f'{args.split}_dataloader'].dataset)
    count = min(args.num_samples, len(dataset))
    for start in range(0, count, args.batch_size):
        items = read_items(dataset, range(start, min(start + args.batch_size, count)))
        if not items:
            continue
        batch = model.data_preprocessor(sounding_video_collate(items))
        with torch.no_grad():
            outputs = model(**batch, mode='predict')
        samples = []
        for output, item in zip(outputs, items):
            sample = {k: v.cpu() if torch.is_tensor(v) else v for k, v in output.items()}
            sample.update(waveform=audio_transform.inverse(output['audio'].float().cpu()),
                          fps=audio_transform.fps, sample_rate=audio_transform.sample_rate,
                          event_frames=item['meta'].get('event_frames'))
            samples.append(sample)
        yield samples


def markdown(metrics: dict, title: str) -> str:
    lines = [f'### {title}', '', '| metric | value |', '|---|---|']
    lines += [f'| {key} | {value:.4f} |' for key, value in sorted(metrics.items())]
    return '\n'.join(lines) + '\n'


def main(argv=None) -> dict:
    args = parse_args(argv)
    model, cfg = load_model_for_tool(args.config, args.checkpoint, args.device, args.cfg_options)
    audio_transform = video_like_audio(cfg)
    is_generator = hasattr(model, 'sample')
    default = GENERATOR_DEFAULT if is_generator else AUTOENCODER_DEFAULT
    metric_cfgs = cfg.get('test_evaluator') or default
    metric_cfgs = [dict(m) for m in (metric_cfgs if isinstance(metric_cfgs, list)
                                     else [metric_cfgs])]
    if args.classifier:
        metric_cfgs.append(dict(type='SyntheticClassifierMetric', checkpoint=args.classifier))
    evaluator = Evaluator(metric_cfgs)
    batches = (generated_batches if is_generator else reconstructed_batches)(
        model, cfg, args, audio_transform)
    total, processed = -(-args.num_samples // args.batch_size), 0
    for samples in tqdm(batches, total=total, desc='sampling' if is_generator else
                        'reconstructing', unit='batch'):
        evaluator.process(samples)
        processed += len(samples)
    metrics = evaluator.evaluate(processed)
    out = args.out or osp.join(osp.dirname(args.checkpoint), 'test')
    os.makedirs(out, exist_ok=True)
    with open(osp.join(out, 'metrics.json'), 'w') as f:
        json.dump(metrics, f, indent=1)
    kind = 'generator' if is_generator else 'autoencoder'
    table = markdown(metrics, f'{kind} {osp.basename(args.checkpoint)}')
    with open(osp.join(out, 'metrics.md'), 'w') as f:
        f.write(table)
    print(table)
    return metrics


if __name__ == '__main__':
    main()
