"""tools/benchmark.py end to end on the tiny preset (no timing is asserted), and how it counts
the FLOPs behind its utilisation columns."""
import json

import pytest
import torch

from pavdit.benchmark.timing import counting_items, peak_tflops
from pavdit.models.generators.stdit import STDiT
from tests.conftest import run_tool


@pytest.mark.slow
def test_benchmark_writes_all_six_rows_and_the_studies(tmp_path):
    out = tmp_path / 'b.md'
    run_tool('tools/benchmark.py', '--preset', 'tiny', '--runs', '1', '--warmup', '0',
             '--attention', '--scaling', '--peak-tflops', '0.5', '--out', str(out), timeout=900)
    report = out.read_text()
    for title in ('MM-Diffusion', 'MM-LDM', 'MM-LDM*', 'PAV-DiT', 'PAV-DiT*'):
        assert f'| {title} |' in report
    results = json.loads(out.with_suffix('.json').read_text())
    assert [r['row'] for r in results['rows']] == ['mm_diffusion_64', 'mm_diffusion_128',
                                                   'mm_ldm', 'mm_ldm_star', 'pavdit',
                                                   'pavdit_star']
    for row in results['rows']:
        assert row['train_s'] > 0 and row['infer_s'] > 0 and row['memory_mb'] > 0
        assert row['parameters'] > 0 and row['gflops'] > 0
        # Train: batch 1 (tiny preset) x 3 forwards; sample: every network call of 2 steps.
        flop_per_item = 2 * row['gflops'] / 1e3
        assert row['train_tflop'] == pytest.approx(3 * flop_per_item)
        assert row['sample_tflop'] / flop_per_item >= 2 - 1e-9  # (rounding of the products)
        assert row['batched_samples_per_s'] > 0
    assert 'train TFLOP/s (MFU) | sample TFLOP/s (MFU) | samples/s at batch 4' in report
    assert 'train vs PAV-DiT' in report and '%) |' in report and 'nan' not in report
    counts = results['paper_parameters']
    assert abs(counts['MM-Diffusion (64)'] / 134e6 - 1) < 0.15
    assert abs(counts['MM-LDM-S'] / 131e6 - 1) < 0.15
    assert 'Attention kernels' in report and '| math | sdpa |' in report
    assert 'against clip length' in report


def test_classifier_free_guidance_counts_twice_per_step():
    from tests.test_generator import _small_pavdit
    model = _small_pavdit().eval()  # class-conditional, reflected flow with 4 steps
    labels = torch.tensor([0, 1, 2])
    with torch.no_grad():
        for scale, calls in ((1.0, 3 * 4), (2.0, 2 * 3 * 4)):
            with counting_items(model, STDiT) as items:
                model.sample(3, labels=labels, guidance_scale=scale, decode=False)
            assert items[0] == calls


def test_peak_table_and_reference_row():
    assert peak_tflops('NVIDIA H100 80GB HBM3', bf16=True) == 989.0
    assert peak_tflops('NVIDIA H100 PCIe', bf16=True) == 756.0
    assert peak_tflops('NVIDIA H200', bf16=False) == 67.0
    assert peak_tflops('CPU (2 cores)', bf16=True) is None
    with pytest.raises(AssertionError, match='--reference pavdit is not among --models'):
        run_tool('tools/benchmark.py', '--models', 'pavdit_star', '--reference', 'pavdit')
