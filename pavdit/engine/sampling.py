"""From a generator's sample to files a person can watch: what tools/sample.py and tools/serve.py
both write for each clip."""
from pathlib import Path
from typing import Tuple, Union

from mmengine.config import Config

from pavdit.data.media import write_mp4
from pavdit.data.preview import save_preview_png, to_uint8_frames
from pavdit.registry import TRANSFORMS


def video_like_audio(cfg: Config):
    """The config's mel-frame transform (the dataset bases define ``video_like_audio``, ``fps``
    and ``sample_rate``)."""
    return TRANSFORMS.build(dict(cfg.get('video_like_audio', dict(type='VideoLikeAudio')),
                                 sample_rate=cfg.get('sample_rate', 16000),
                                 fps=cfg.get('fps', 10)))


def write_sample(output: dict, audio_transform, stem: Union[str, Path], title: str = ''
                 ) -> Tuple[Path, Path]:
    """Write one sample of ``model.sample`` as ``<stem>.mp4`` (its video with the mel frames
    turned to sound by ``audio_transform.inverse``, Griffin-Lim) and ``<stem>.png`` (frames above
    mel frames, titled ``title``); return both paths.

    Args:
        output: ``video`` (3, T, H, W) and ``audio`` (1, T, n_mels, Wa) in [-1, 1], fp32, on
            any device.
        audio_transform: the config's ``VideoLikeAudio`` (see :func:`video_like_audio`).
    """
    video, audio = output['video'].cpu(), output['audio'].cpu()
    waveform = audio_transform.inverse(audio)
    mp4 = write_mp4(f'{stem}.mp4', to_uint8_frames(video), audio_transform.fps,
                    waveform[0].numpy(), audio_transform.sample_rate)
    return mp4, save_preview_png(video, audio, f'{stem}.png', title=title)
