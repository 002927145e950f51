# MDSA (full model) on Landscape, both stages in one run: stage 2 from iteration 100000 of 150000.
# Every Table 5 row inherits this file and changes only the block it removes.
_base_ = ['../_base_/models/mdsa.py', '../_base_/datasets/landscape.py',
          '../_base_/schedules/mdsa.py', '../_base_/default_runtime.py']
model = dict(disc_start=100000)
