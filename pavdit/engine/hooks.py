"""Training hooks."""
import itertools

from mmengine import dist
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from torch.utils.data import DataLoader

from pavdit.registry import HOOKS


@HOOKS.register_module()
class FitLatentStatsHook(Hook):
    """Before training, fit the generator's latent normaliser on the first ``num_batches`` batches.

    Skipped when the normaliser is already fitted (a resumed run or loaded weights restore its
    buffers), so resuming never changes the latent scale mid-training. In distributed runs rank 0's
    statistics are broadcast so every rank normalises identically.
    """

    priority = 'VERY_HIGH'

    def __init__(self, num_batches: int = 50):
        self.num_batches = num_batches

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        if bool(model.normalizer.fitted):
            return
        # A loader of our own: iterating the Runner's would consume (and, when we stop early,
        # close) its InfiniteSampler's index generator.
        train_loader = runner.train_dataloader
        loader = DataLoader(train_loader.dataset, batch_size=train_loader.batch_size,
                            shuffle=False, collate_fn=train_loader.collate_fn)
        batches = []
        for data in itertools.islice(loader, self.num_batches):
            batches.append(model.latents_of(model.data_preprocessor(data, False)))
        model.normalizer.fit(batches)
        for buffer in model.normalizer.buffers():
            dist.broadcast(buffer, src=0)
        print_log(f'fitted latent statistics on {len(batches)} batches', logger='current')
