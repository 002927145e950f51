"""The data tools from the command line: make_synthetic -> SoundingVideoDataset, browse, throughput."""
import json
import av

from pavdit.data.synthetic import CLASSES
from tests.conftest import run_tool


def test_make_synthetic_writes_a_readable_set_and_corrupt_files_are_named(tmp_path):
    out = tmp_path / 'syn'
    run_tool('tools/data/make_synthetic.py', '--out', str(out), '--num', '12')
    files = sorted((out / 'train').rglob('*.mp4'))
    assert len(files) == 12
    for path in files:
        with av.open(str(path)) as container:
            assert [s.codec_context.name for s in container.streams.video] == ['h264']
            assert [s.codec_context.name for s in container.streams.audio] == ['aac']
    assert json.loads((out / 'class_map.json').read_text()) == {c: i for i, c in
                                                                enumerate(CLASSES)}
    events_file = out / 'train' / 'events.jsonl'
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert len(events) == 12 and all(row['event_frames'] for row in events)

    good = files[0].read_bytes()
    (out / 'train' / 'rain' / 'corrupt.mp4').write_bytes(good[:len(good) // 3])
    # Build in a subprocess to see the warning exactly as a user does.
    code = ('from pavdit.data import SoundingVideoDataset\n'
            f'ds = SoundingVideoDataset({str(out)!r}, resolution=64, '
            f'class_map={str(out / "class_map.json")!r})\n'
            'item = ds[0]\n'
            'print(len(ds), tuple(item["video"].shape), tuple(item["audio"].shape), '
            'tuple(item["waveform"].shape), item["label"], repr(item["text"]))\n')
    proc = run_tool('-c', code)
    assert 'corrupt.mp4' in proc.stdout + proc.stderr and 'skipping' in proc.stdout + proc.stderr
    assert ("12 (3, 16, 64, 64) (1, 16, 64, 16) (1, 25600) 0 'a video of bouncing ball'"
            in proc.stdout)


def test_browse_writes_one_png_per_item(tmp_path):
    run_tool('tools/data/make_synthetic.py', '--out', str(tmp_path / 'syn'), '--num', '3')
    run_tool('tools/data/browse.py', '--data-root', str(tmp_path / 'syn'), '--num', '3',
             '--out', str(tmp_path / 'png'))
    run_tool('tools/data/browse.py', '--synthetic', '--num', '2', '--out', str(tmp_path / 'p2'))
    for folder, count in (('png', 3), ('p2', 2)):
        pngs = sorted((tmp_path / folder).glob('*.png'))
        assert len(pngs) == count and all(p.read_bytes()[:4] == b'\x89PNG' for p in pngs)


def test_read_throughput_reports_both_worker_counts():
    out = run_tool('tools/data/read_throughput.py', '--synthetic', '--resolution', '32',
                   '--clips', '8').stdout
    assert '0 workers' in out and '2 workers' in out and 'clips/s' in out
