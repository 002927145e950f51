# AudioSet subset (MM-Diffusion's 100k-video protocol): .mp4 clips listed in a manifest
# (<data_root>/train.csv with columns path,label,text). See docs/data.md.
_base_ = ['./landscape.py']
data_root = 'data/audioset'
train_dataloader = dict(dataset=dict(data_root=data_root, manifest='train.csv'))
val_dataloader = dict(dataset=dict(data_root=data_root, manifest='test.csv', split='test'))
