# MDSA on Landscape, stage 2: adversarial, feature-matching and KL terms on from the first
# iteration, starting from the stage-1 weights.
_base_ = ['../_base_/models/mdsa.py', '../_base_/datasets/landscape.py',
          '../_base_/schedules/mdsa_stage2.py', '../_base_/default_runtime.py']
model = dict(disc_start=0)
load_from = 'work_dirs/mdsa_landscape/iter_100000.pth'
