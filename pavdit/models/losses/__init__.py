"""Autoencoder training losses: reconstruction-side perceptual loss, KL, adversarial terms."""
from pavdit.models.losses.adversarial import (feature_matching_loss, hinge_discriminator_loss,
                                              hinge_generator_loss)
from pavdit.models.losses.kl import DiagonalGaussian
from pavdit.models.losses.perceptual import PerceptualLoss, vgg16_features

__all__ = ['DiagonalGaussian', 'PerceptualLoss', 'feature_matching_loss',
           'hinge_discriminator_loss', 'hinge_generator_loss', 'vgg16_features']
