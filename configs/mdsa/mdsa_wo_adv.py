# Table 5: MDSA without the adversarial loss (no discriminators are built).
_base_ = ['./mdsa_landscape.py']
model = dict(video_discriminator=None, audio_discriminator=None)
