"""A training sampler that tells the dataset the epoch, and can start in the middle of an epoch.

BasicSR's loop builds ``EnlargedSampler(dataset, world_size, rank, ratio)`` and hands the dataset
bare indices, so a dataset cannot know which epoch it is in, and a resumed run restarts its epoch
from the first batch. :class:`EpochIndexSampler` keeps BasicSR's order exactly (the same
``randperm`` seeded by the epoch, the same rank-strided shard) and changes two things:

* for datasets that declare ``accepts_epoch_index = True`` it yields ``(epoch, index)`` pairs,
  where ``index`` is the position in the enlarged epoch (before the modulo by the dataset length),
  so the dataset can seed every random draw of a sample from ``(seed, epoch, index)``. Other
  datasets get plain ``int`` indices, exactly as upstream, so stock BasicSR datasets still work;
* :meth:`resume` drops the samples an interrupted run already consumed in its last epoch, so a
  resumed run sees the same batches as an uninterrupted one.

Together these make the data a run sees independent of the number of processes and workers and of
resuming. ``fcdfn_plugin.compat`` installs this class as the sampler of ``basicsr.train``.
"""
import math

import torch
from basicsr.data.data_sampler import EnlargedSampler


class EpochIndexSampler(EnlargedSampler):
    """Drop-in for BasicSR's ``EnlargedSampler`` (same arguments, same order of samples).

    Args:
        dataset: the training dataset.
        num_replicas (int): world size.
        rank (int): rank of this process.
        ratio (int): BasicSR's ``dataset_enlarge_ratio``. Default: 1.
    """

    def __init__(self, dataset, num_replicas, rank, ratio=1):
        super().__init__(dataset, num_replicas, rank, ratio)
        self.with_epoch = bool(getattr(dataset, 'accepts_epoch_index', False))
        self._resume_epoch = None
        self._resume_skip = 0

    def resume(self, epoch, samples_done):
        """Start epoch ``epoch`` after its first ``samples_done`` samples (of this rank)."""
        if not 0 <= samples_done <= self.num_samples:
            raise ValueError(f'Cannot resume epoch {epoch} after {samples_done} samples: '
                             f'an epoch has {self.num_samples} samples per process.')
        self._resume_epoch, self._resume_skip = epoch, samples_done

    def _skip(self):
        return self._resume_skip if self.epoch == self._resume_epoch else 0

    def __iter__(self):
        generator = torch.Generator()
        generator.manual_seed(self.epoch)  # BasicSR's seeding: the order depends on the epoch only
        positions = torch.randperm(self.total_size, generator=generator).tolist()
        positions = positions[self.rank:self.total_size:self.num_replicas][self._skip():]
        if self.with_epoch:
            return iter([(self.epoch, position) for position in positions])
        dataset_size = len(self.dataset)
        return iter([position % dataset_size for position in positions])

    def __len__(self):
        return self.num_samples - self._skip()


def batches_per_epoch(sampler, batch_size):
    """Batches BasicSR's loop runs per epoch (its DataLoader drops the last incomplete batch)."""
    return sampler.num_samples // batch_size


def resume_position(epoch, current_iter, sampler, batch_size):
    """Samples of epoch ``epoch`` that a run saved at ``current_iter`` had already consumed.

    BasicSR's loop starts epoch ``e`` at iteration ``e * batches_per_epoch`` when every earlier
    epoch was run whole, which :meth:`EpochIndexSampler.resume` guarantees for resumed runs too.
    """
    per_epoch = batches_per_epoch(sampler, batch_size)
    done = current_iter - epoch * per_epoch
    if not 0 <= done <= per_epoch:
        raise ValueError(
            f'Training state of epoch {epoch}, iteration {current_iter} does not match this run: '
            f'{per_epoch} batches of {batch_size} per epoch put iteration {current_iter} in epoch '
            f'{max(0, math.ceil(current_iter / max(per_epoch, 1)) - 1)}. Was the batch size, the '
            'number of processes or the dataset changed since the state was saved?')
    return done * batch_size
