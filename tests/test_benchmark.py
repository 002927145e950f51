"""tools/benchmark.py end to end on the tiny preset (no timing is asserted)."""
import json

import pytest

from tests.conftest import run_tool


@pytest.mark.slow
def test_benchmark_writes_all_six_rows_and_the_studies(tmp_path):
    out = tmp_path / 'b.md'
    run_tool('tools/benchmark.py', '--preset', 'tiny', '--runs', '1', '--warmup', '0',
             '--attention', '--scaling', '--out', str(out), timeout=900)
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
    counts = results['paper_parameters']
    assert abs(counts['MM-Diffusion (64)'] / 134e6 - 1) < 0.15
    assert abs(counts['MM-LDM-S'] / 131e6 - 1) < 0.15
    assert 'Attention kernels' in report and '| math | sdpa |' in report
    assert 'against clip length' in report
