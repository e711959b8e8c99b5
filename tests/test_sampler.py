"""EpochIndexSampler keeps BasicSR's sample order, adds the epoch, and resumes mid-epoch."""
import pytest
from basicsr.data.data_sampler import EnlargedSampler

from fcdfn_plugin.data.sampler import EpochIndexSampler, batches_per_epoch, resume_position


class Plain:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


class EpochAware(Plain):
    accepts_epoch_index = True


@pytest.mark.parametrize('n,world,ratio', [(10, 1, 1), (10, 2, 1), (7, 2, 3), (13, 3, 2)])
def test_same_order_as_basicsr(n, world, ratio):
    for rank in range(world):
        ours, upstream = EpochIndexSampler(Plain(n), world, rank, ratio), EnlargedSampler(Plain(n), world, rank, ratio)
        aware = EpochIndexSampler(EpochAware(n), world, rank, ratio)
        for epoch in range(3):
            for sampler in (ours, upstream, aware):
                sampler.set_epoch(epoch)
            expected = list(upstream)
            assert list(ours) == expected
            pairs = list(aware)
            assert [p % n for _, p in pairs] == expected
            assert all(e == epoch for e, _ in pairs)
            assert len(ours) == len(expected)


def test_enlarged_positions_are_distinct_within_an_epoch():
    """With dataset_enlarge_ratio > 1 an image repeats, but its (epoch, position) seed does not."""
    sampler = EpochIndexSampler(EpochAware(5), 1, 0, ratio=4)
    positions = [p for _, p in sampler]
    assert len(set(positions)) == len(positions) == 20
    assert sorted({p % 5 for p in positions}) == list(range(5))


def test_two_processes_batch_b_cover_one_process_batch_2b():
    n, batch = 16, 2
    single = list(EpochIndexSampler(EpochAware(n), 1, 0))
    ranks = [list(EpochIndexSampler(EpochAware(n), 2, r)) for r in range(2)]
    for step in range(n // (2 * batch)):
        merged = ranks[0][step * batch:(step + 1) * batch] + ranks[1][step * batch:(step + 1) * batch]
        assert sorted(merged) == sorted(single[step * 2 * batch:(step + 1) * 2 * batch])


def test_resume_skips_consumed_samples_in_that_epoch_only():
    full = EpochIndexSampler(EpochAware(12), 1, 0)
    resumed = EpochIndexSampler(EpochAware(12), 1, 0)
    resumed.resume(epoch=1, samples_done=5)
    for epoch in range(3):
        full.set_epoch(epoch)
        resumed.set_epoch(epoch)
        expected = list(full)[5:] if epoch == 1 else list(full)
        assert list(resumed) == expected
        assert len(resumed) == len(expected)
    with pytest.raises(ValueError, match='13 samples'):
        resumed.resume(epoch=0, samples_done=13)


def test_resume_position_matches_basicsr_loop():
    sampler = EpochIndexSampler(EpochAware(10), 1, 0)  # 10 samples, batch 4 -> 2 batches per epoch
    assert batches_per_epoch(sampler, 4) == 2
    # BasicSR's loop: iterations 1-2 in epoch 0, 3-4 in epoch 1; a state saved at the last batch of
    # an epoch has consumed that whole epoch.
    assert resume_position(0, 1, sampler, 4) == 4
    assert resume_position(0, 2, sampler, 4) == 8
    assert resume_position(1, 3, sampler, 4) == 4
    with pytest.raises(ValueError, match='batch size'):
        resume_position(0, 5, sampler, 4)
