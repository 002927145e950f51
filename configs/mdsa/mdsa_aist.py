# MDSA (full model) on AIST++, stage 1.
_base_ = ['../_base_/models/mdsa.py', '../_base_/datasets/aist.py',
          '../_base_/schedules/mdsa_stage1.py', '../_base_/default_runtime.py']
