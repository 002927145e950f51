# MDSA (full model) on AIST++, both stages in one run: stage 2 from iteration 100000 of 150000.
_base_ = ['../_base_/models/mdsa.py', '../_base_/datasets/aist.py',
          '../_base_/schedules/mdsa.py', '../_base_/default_runtime.py']
model = dict(disc_start=100000)
