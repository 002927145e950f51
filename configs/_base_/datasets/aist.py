# AIST++ (MM-Diffusion's release): <data_root>/{train,test}/*.mp4, genre labels from file names.
_base_ = ['./landscape.py']
data_root = 'data/aist'
train_dataloader = dict(dataset=dict(data_root=data_root, label_source='aist'))
val_dataloader = dict(dataset=dict(data_root=data_root, label_source='aist'))
