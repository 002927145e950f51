# MDSA (full model) on Landscape, stage 1. Stage 2: mdsa_landscape_stage2.py.
_base_ = ['../_base_/models/mdsa.py', '../_base_/datasets/landscape.py',
          '../_base_/schedules/mdsa_stage1.py', '../_base_/default_runtime.py']
