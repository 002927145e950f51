# PAV-DiT* on the synthetic set: the tiny generator trained on cached latents
# (tools/cache_latents.py configs/mdsa/mdsa_synthetic_tiny.py <mdsa checkpoint> --out <cache_dir>).
_base_ = ['./pavdit_synthetic_tiny.py']
train_dataloader = dict(
    dataset=dict(_delete_=True, type='LatentCacheDataset',
                 cache_dir='work_dirs/latents_synthetic_tiny'))
