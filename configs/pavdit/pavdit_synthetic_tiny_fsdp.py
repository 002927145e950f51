# The tiny PAV-DiT with its generator sharded by FSDP through mmengine's FlexibleRunner (CUDA):
#   torchrun --nproc-per-node N tools/train.py configs/pavdit/pavdit_synthetic_tiny_fsdp.py \
#       --launcher pytorch
# Any generator config becomes FSDP by adding these keys (docs/distributed.md).
_base_ = ['./pavdit_synthetic_tiny.py']

runner_type = 'FlexibleRunner'
strategy = dict(
    type='pavdit.ResumableFSDPStrategy',  # mmengine's FSDPStrategy, with a working resume
    state_dict_cfg='full',  # rank 0 writes whole weights: checkpoints load anywhere, as usual
    model_wrapper=dict(
        type='pavdit.ModelStepFullyShardedDataParallel',  # keeps PAV-DiT's EMA step
        auto_wrap_policy=dict(type='torch.distributed.fsdp.wrap.size_based_auto_wrap_policy',
                              min_num_params=int(1e5))))
