"""Export a checkpoint's model weights as safetensors, with its config beside them: no pickle.

    python tools/export.py CHECKPOINT OUT_DIR [--parts PART ...] [--force]

Files written in OUT_DIR (one per part; the parts' union, with the non-tensor state kept in
config.json, is the complete state dict):

    PAVDiT      generator.safetensors (generator.*), ema_generator.safetensors (ema_generator.*),
                autoencoder.safetensors (autoencoder.*), extras.safetensors (everything else:
                latent statistics, conditioner weights, ema_steps, ...)
    MDSA        autoencoder.safetensors (the model), discriminators.safetensors (discriminators.*,
                only needed to train on)
    any other   model.safetensors

and config.json (see pavdit/utils/safetensors_io.py). Keys are stored without their part's
prefix, so an autoencoder.safetensors has the same keys whichever model it comes from.
``--parts`` writes only the named parts (e.g. ``--parts ema_generator autoencoder extras`` for
sampling only); the others are recorded as omitted. Load an export with
``pavdit.engine.checkpoints.load_model(OUT_DIR)`` or give OUT_DIR to tools/sample.py.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Optional, Sequence

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import pavdit  # noqa: E402
from pavdit.engine.checkpoints import stored_config  # noqa: E402
from pavdit.utils.checkpoint_io import load_checkpoint_file  # noqa: E402
from pavdit.utils.safetensors_io import MANIFEST, write_export  # noqa: E402

# Model type -> part name -> state-dict prefix ('' takes every key no other part takes).
LAYOUTS = {
    'PAVDiT': dict(generator='generator.', ema_generator='ema_generator.',
                   autoencoder='autoencoder.', extras=''),
    'MDSA': dict(discriminators='discriminators.', autoencoder=''),
}
DEFAULT_LAYOUT = dict(model='')


def export_checkpoint(checkpoint: str, out_dir: str, parts: Optional[Sequence[str]] = None,
                      force: bool = False) -> dict:
    """Write the model of a tools/train.py ``checkpoint`` to ``out_dir``; return the manifest.

    ``parts``: the part names to write (default: all of the model type's).

    Raises:
        FileNotFoundError: no ``checkpoint``.
        FileExistsError: ``out_dir`` exists and is not empty, and not ``force``.
        KeyError: the checkpoint holds no config.
        ValueError: a part the model type does not have.
    """
    loaded = load_checkpoint_file(checkpoint, map_location='cpu', mmap=True)
    if osp.exists(out_dir) and (not osp.isdir(out_dir) or os.listdir(out_dir)) and not force:
        raise FileExistsError(f'{out_dir} exists and is not an empty directory; choose another '
                              f'OUT_DIR or pass --force to overwrite the export there')
    meta = loaded.get('meta', {})
    model_type = str(stored_config(meta, checkpoint).model.type).split('.')[-1]
    layout = LAYOUTS.get(model_type, DEFAULT_LAYOUT)
    unknown = sorted(set(parts or ()) - set(layout))
    if unknown:
        raise ValueError(f'--parts {unknown}: a {model_type} export has the parts {list(layout)}')
    os.makedirs(out_dir, exist_ok=True)
    if osp.isfile(osp.join(out_dir, MANIFEST)):
        # Gone before any weights file changes: an export cut short is never taken for whole.
        os.remove(osp.join(out_dir, MANIFEST))
    print(f'exporting the {model_type} of {checkpoint} (iteration {meta.get("iter")}) to {out_dir}')
    return write_export(
        loaded['state_dict'], out_dir, layout,
        header=dict(pavdit_version=pavdit.__version__, model_type=model_type,
                    source=osp.basename(checkpoint)),
        meta=dict(iter=meta.get('iter'), dataset_meta=meta.get('dataset_meta'), cfg=meta['cfg']),
        omit=[name for name in layout if parts and name not in parts],
        progress=lambda name, entry: print(
            f'  {name:28s} {entry["tensors"]:5d} tensors {entry["bytes"] / 2**20:10.2f} MiB'))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description='Export checkpoint weights as safetensors.')
    parser.add_argument('checkpoint', help='a tools/train.py checkpoint (.pth)')
    parser.add_argument('out_dir', help='where to write the .safetensors files and config.json')
    parser.add_argument('--parts', nargs='+', default=None,
                        help='parts to write (default: all; see the module docstring)')
    parser.add_argument('--force', action='store_true', help='write into a non-empty OUT_DIR')
    args = parser.parse_args(argv)
    try:
        manifest = export_checkpoint(args.checkpoint, args.out_dir, args.parts, args.force)
    except (FileNotFoundError, FileExistsError, KeyError, ValueError) as err:
        parser.exit(1, f'export: error: {err.args[0] if isinstance(err, KeyError) else err}\n')
    files = manifest['files'].values()
    print(f'wrote {len(files)} weights files ({sum(f["tensors"] for f in files)} tensors, '
          f'{sum(f["bytes"] for f in files) / 2**20:.2f} MiB, {manifest["dtype"]}) and {MANIFEST}'
          + (f'; left out: {", ".join(manifest["omitted"])}' if manifest['omitted'] else ''))


if __name__ == '__main__':
    main()
