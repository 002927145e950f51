# PAV-DiT on AIST++: text-conditioned ("a video of <class>"), reflected flow, 30 steps.
# Select another scheduler with --cfg-options model.scheduler.type=RectifiedFlow (or DDIM, DDPM).
_base_ = ['../_base_/models/pavdit.py', '../_base_/datasets/aist.py',
          '../_base_/schedules/pavdit.py', '../_base_/default_runtime.py']
model = dict(autoencoder=dict(checkpoint='work_dirs/mdsa_aist/iter_150000.pth'))
# Sample quality is measured by tools/test.py, not during training.
val_dataloader = None
val_cfg = None
val_evaluator = None
