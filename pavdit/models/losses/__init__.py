"""Autoencoder training losses: pixel reconstruction and perceptual losses, KL, adversarial terms."""
from pavdit.models.losses.adversarial import (feature_matching_loss, hinge_discriminator_loss,
                                              hinge_generator_loss)
from pavdit.models.losses.kl import DiagonalGaussian
from pavdit.models.losses.perceptual import PerceptualLoss, vgg16_features
from pavdit.models.losses.reconstruction import ReconstructionLoss

__all__ = ['DiagonalGaussian', 'PerceptualLoss', 'ReconstructionLoss', 'feature_matching_loss',
           'hinge_discriminator_loss', 'hinge_generator_loss', 'vgg16_features']
