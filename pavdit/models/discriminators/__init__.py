"""Discriminators for adversarial training of the audio and video autoencoders."""
from pavdit.models.discriminators.patch_gan import (AudioPatchDiscriminator,
                                                     VideoPatchDiscriminator)

__all__ = ['AudioPatchDiscriminator', 'VideoPatchDiscriminator']
