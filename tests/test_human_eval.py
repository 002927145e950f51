"""Human evaluation (Table 4): build a blinded study, serve it, rate it in a real browser, score it.

Expected numbers are worked out by hand in the comments, never taken from the code under test.
"""
import json
import math
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import pytest

from pavdit.data.media import write_mp4
from pavdit.data.synthetic import render_clip
from pavdit.evaluation.human_study.agreement import krippendorff_alpha
from pavdit.evaluation.human_study.build import build_study, parse_method
from pavdit.evaluation.human_study.scoring import bootstrap_mean_ci, format_table, score_study
from pavdit.evaluation.human_study.server import StudyServer
from pavdit.evaluation.human_study.study import (STUDY_FORMAT, SUBMISSION_FORMAT, StudyError,
                                                 load_key)
from pavdit.evaluation.human_study.submissions import SubmissionError, load_submission
from tests.conftest import http_request, run_tool, serving

METHODS = {'AlphaMethod': 'thunder', 'BetaMethod': 'rain'}  # name -> synthetic class
CHROMIUM, CHROMEDRIVER = Path('/usr/bin/chromium'), Path('/usr/bin/chromedriver')


@pytest.fixture(scope='module')
def sample_dirs(tmp_path_factory):
    """Two folders of 4 small .mp4 files with sound, their names full of the method name."""
    root = tmp_path_factory.mktemp('samples')
    dirs = {}
    for name, class_name in METHODS.items():
        folder = root / name.lower()
        for seed in range(4):
            clip = render_clip(class_name, seed, num_frames=8, height=32, width=32)
            write_mp4(folder / f'{name.lower()}_clip{seed}.mp4', clip['frames'], 10,
                      clip['waveform'], 16000)
        dirs[name] = folder
    return dirs


@pytest.fixture(scope='module')
def study(sample_dirs, tmp_path_factory):
    out = tmp_path_factory.mktemp('study') / 'study'
    key = build_study(list(sample_dirs.items()), per_method=3, out=out, seed=7, progress=False)
    return out, key


def _submission(key, rater, scores, **changes):
    """A complete submission: ``scores(item) -> (aq, vq, av)``."""
    data = dict(format=SUBMISSION_FORMAT, study_id=key['study_id'], rater_id=rater,
                started_at='2025-01-31T12:00:00.000Z', finished_at='2025-01-31T12:10:00.000Z',
                ratings=[dict(item=item, **dict(zip(('aq', 'vq', 'av'), scores(item))))
                         for item in sorted(key['items'])])
    data.update(changes)
    return data


# --- agreement ------------------------------------------------------------------------------

def test_krippendorff_alpha_matches_the_published_reference_values():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: 4 observers
    # x 12 units, values 1..5, missing values. Published: nominal .743, ordinal .815,
    # interval .849, ratio .797.
    nan = float('nan')
    data = [[1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
            [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan]]
    for metric, published in (('nominal', 0.743), ('ordinal', 0.815), ('interval', 0.849),
                              ('ratio', 0.797)):
        assert abs(krippendorff_alpha(data, metric) - published) < 1e-3, metric
    assert krippendorff_alpha([[1, 2, 3], [1, 2, 3]], 'ordinal') == 1.0
    assert math.isnan(krippendorff_alpha([[3, 3], [3, 3]]))  # no variation: undefined
    with pytest.raises(ValueError, match='two or more observers'):
        krippendorff_alpha([[1, nan], [nan, 2]])


# --- scoring --------------------------------------------------------------------------------

def _hand_made_study(folder: Path) -> dict:
    """A study key without media (scoring needs none): items i0, i1 of M1 and i2, i3 of M2."""
    key = dict(format=STUDY_FORMAT, study_id='hand', title='hand-made', seed=0, per_method=2,
               methods=[dict(name='M1', dir='-', available=2), dict(name='M2', dir='-',
                                                                   available=2)],
               items={f'i{i}': dict(method='M1' if i < 2 else 'M2', source='-',
                                    media=f'media/i{i}.mp4') for i in range(4)})
    (folder / 'responses').mkdir(parents=True)
    (folder / 'study.json').write_text(json.dumps(key))
    return key


HAND_RATINGS = {  # rater -> item -> (aq, vq, av)
    'r1': {'i0': (4, 3, 5), 'i1': (2, 3, 4), 'i2': (1, 1, 2), 'i3': (3, 2, 2)},
    'r2': {'i0': (5, 3, 4), 'i1': (3, 4, 4), 'i2': (1, 2, 1), 'i3': (2, 2, 3)},
}


def test_scoring_matches_hand_computed_means_ci_and_alpha(tmp_path):
    key = _hand_made_study(tmp_path)
    for rater, ratings in HAND_RATINGS.items():
        data = _submission(key, rater, ratings.get)
        (tmp_path / 'responses' / f'{rater}.json').write_text(json.dumps(data))
    scores = score_study(tmp_path, resamples=4000, seed=0)
    # M1: AQ (4 + 2 + 5 + 3) / 4 = 3.5, VQ (3 + 3 + 3 + 4) / 4 = 3.25, A-V (5 + 4 + 4 + 4) / 4
    # = 4.25; M2: AQ (1 + 3 + 1 + 2) / 4 = 1.75, VQ (1 + 2 + 2 + 2) / 4 = 1.75, A-V 8 / 4 = 2.
    expected = {'M1': (3.5, 3.25, 4.25), 'M2': (1.75, 1.75, 2.0)}
    for method, means in expected.items():
        row = scores['methods'][method]
        assert (row['items'], row['ratings']) == (2, 4)
        assert [row[c]['mean'] for c in ('aq', 'vq', 'av')] == pytest.approx(means)
    # M1 AQ item sums are 9 (i0) and 5 (i1), two ratings each: a resample of two items has mean
    # 4.5 (i0 twice, p = 1/4), 3.5 (p = 1/2) or 2.5 (p = 1/4), so the 2.5/97.5 % percentiles
    # are 2.5 and 4.5.
    assert scores['methods']['M1']['aq']['ci'] == pytest.approx([2.5, 4.5])
    # Ordinal alpha of AQ, units i0 (4, 5), i1 (2, 3), i2 (1, 1), i3 (3, 2): coincidences
    # o11 = 2, o23 = o32 = 2, o45 = o54 = 1; n_c = (2, 2, 2, 1, 1), n = 8. Ordinal d2(c, k) =
    # (sum_{g=c..k} n_g - (n_c + n_k) / 2)^2: d2(2, 3) = 4, d2(4, 5) = 1, so observed
    # sum o d2 = 4 * 4 + 2 * 1 = 18. Expected sum_{c != k} n_c n_k d2 = 2 * 324 = 648
    # (d2 for 1-2 .. 4-5: 4, 16, 30.25, 42.25, 4, 12.25, 20.25, 2.25, 6.25, 1).
    # alpha = 1 - (n - 1) * 18 / 648 = 1 - 7 * 18 / 648 = 29 / 36.
    assert scores['alpha']['aq'] == pytest.approx(29 / 36)
    table = format_table(scores)
    assert '| M1 | 3.50 [2.50, 4.50] |' in table and "Krippendorff's α (ordinal) | 0.806 |" \
        in table


def test_scoring_keeps_the_latest_submission_per_rater_and_names_bad_files(tmp_path):
    key = _hand_made_study(tmp_path)
    early = _submission(key, 'r1', lambda item: (1, 1, 1))
    late = _submission(key, 'r1', lambda item: (5, 5, 5), started_at='2025-02-01T09:00:00Z',
                       finished_at='2025-02-01T09:30:00Z')
    (tmp_path / 'responses' / 'b.json').write_text(json.dumps(early))
    downloaded = tmp_path / 'downloaded.json'
    downloaded.write_text(json.dumps(late))
    scores = score_study(tmp_path, extra=[downloaded], resamples=100)
    assert scores['methods']['M1']['aq']['mean'] == 5.0 and scores['raters'] == ['r1']
    assert scores['superseded'] == [str(tmp_path / 'responses' / 'b.json')]
    assert scores['alpha']['aq'] is None  # one rater: no agreement to measure
    bad = tmp_path / 'responses' / 'c.json'
    bad.write_text(json.dumps(_submission(key, 'r2', lambda item: (1, 6, 1))))
    with pytest.raises(SubmissionError, match=r'c\.json: ratings\[0\]\.vq: 6 is not an integer'):
        score_study(tmp_path, resamples=10)


def test_bootstrap_ci_contains_the_mean_is_seeded_and_shrinks_with_more_items():
    def ratings(items, seed):  # 2 raters x items, integer scores around an item quality
        rng = np.random.default_rng(seed)
        quality = rng.normal(3, 0.8, items)
        return np.clip(np.rint(quality + rng.normal(0, 0.6, (2, items))), 1, 5)

    small, large = ratings(40, 1), ratings(1000, 2)
    mean, low, high = bootstrap_mean_ci(small, 2000, np.random.default_rng(5))
    assert mean == pytest.approx(small.mean()) and low < mean < high
    assert bootstrap_mean_ci(small, 2000, np.random.default_rng(5)) == (mean, low, high)
    assert bootstrap_mean_ci(small, 2000, np.random.default_rng(6)) != (mean, low, high)
    large_mean, large_low, large_high = bootstrap_mean_ci(large, 2000, np.random.default_rng(5))
    assert large_low < large_mean < large_high
    # 25x the items: the interval narrows by about sqrt(25) = 5.
    assert (large_high - large_low) < (high - low) / 3


# --- build ----------------------------------------------------------------------------------

def test_build_blinds_methods_and_copies_every_sample(study, sample_dirs):
    out, key = study
    assert load_key(out) == key and len(key['items']) == 6
    assert sorted(m['name'] for m in key['methods']) == sorted(METHODS)
    counts = {name: 0 for name in METHODS}
    for item, info in key['items'].items():
        counts[info['method']] += 1
        assert Path(info['source']).parent == sample_dirs[info['method']].resolve()
        assert (out / info['media']).read_bytes() == Path(info['source']).read_bytes()
        assert info['media'] == f'media/{item}.mp4'
    assert counts == {name: 3 for name in METHODS}
    # Numbering is shuffled across methods, so item numbers do not group by method.
    assert [key['items'][f'item_{i:03d}']['method'] for i in range(6)] != \
        sorted(key['items'][f'item_{i:03d}']['method'] for i in range(6))
    public = [(out / name).read_text() for name in ('index.html', 'app.js', 'style.css')]
    public += [p.name for p in (out / 'media').iterdir()]
    for text in public:
        for name in METHODS:
            assert name.lower() not in text.lower()
    assert key['study_id'] in public[0] and 'item_005' in public[0]


def test_build_is_deterministic_under_a_seed(study, sample_dirs, tmp_path):
    out, key = study
    again = build_study(list(sample_dirs.items()), 3, tmp_path / 'again', seed=7, progress=False)
    other = build_study(list(sample_dirs.items()), 3, tmp_path / 'other', seed=8, progress=False)
    again.pop('created_at')
    assert again == {f: v for f, v in key.items() if f != 'created_at'}
    assert (tmp_path / 'again' / 'index.html').read_text() == (out / 'index.html').read_text()
    assert {i: v['source'] for i, v in other['items'].items()} != \
        {i: v['source'] for i, v in key['items'].items()}
    assert other['study_id'] != key['study_id']


def test_build_names_the_offending_argument(sample_dirs, tmp_path):
    alpha, beta = str(sample_dirs['AlphaMethod']), str(sample_dirs['BetaMethod'])
    with pytest.raises(StudyError, match=r"--method 'nodir'.*NAME=DIR"):
        parse_method('nodir')
    with pytest.raises(StudyError, match=r'--method .*missing.* is not a folder'):
        parse_method(f'X={tmp_path / "missing"}')
    cases = [
        ([('A', alpha), ('A', beta)], 2, "name 'A' is given twice"),
        ([('A', alpha)], 5, r'holds 4 \.mp4 file\(s\), but --per-method asks for 5'),
        ([('A', alpha)], 0, '--per-method must be >= 1'),
    ]
    for methods, per_method, message in cases:
        with pytest.raises(StudyError, match=message):
            build_study([(n, Path(d)) for n, d in methods], per_method, tmp_path / 'x',
                        progress=False)
    (tmp_path / 'used').mkdir()
    (tmp_path / 'used' / 'keep.txt').write_text('results')
    with pytest.raises(StudyError, match='--out .*used: already exists'):
        build_study([('A', Path(alpha))], 1, tmp_path / 'used', progress=False)
    silent = tmp_path / 'silent'
    silent.mkdir()
    with av.open(str(silent / 'mute.mp4'), 'w') as container:  # video only
        stream = container.add_stream('libx264', rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = 'yuv420p'
        for _ in range(2):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(
                np.zeros((32, 32, 3), np.uint8), format='rgb24')))
        container.mux(stream.encode())
    with pytest.raises(StudyError, match='--method S: .*mute.mp4 has no audio stream'):
        build_study([('S', silent)], 1, tmp_path / 'y', progress=False)
    assert not (tmp_path / 'y').exists()  # checked before anything is written


# --- server ---------------------------------------------------------------------------------

def _serving(folder, **options):
    """``folder`` served from a thread on an ephemeral loopback port."""
    return serving(StudyServer(folder, port=0, quiet=True, **options))


@pytest.fixture
def server(study, tmp_path):
    """The study (copied, so stored responses stay per test), served."""
    folder = tmp_path / 'served'
    shutil.copytree(study[0], folder)
    with _serving(folder, max_body=64 * 1024) as running:
        yield running


def _post(server, data):
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    status, _, payload = http_request(server, 'POST', '/submit', body,
                                  {'Content-Type': 'application/json'})
    return status, json.loads(payload)


def test_server_serves_the_page_and_media_with_ranges(server):
    status, headers, body = http_request(server, 'GET', '/')
    assert status == 200 and headers['Content-Type'].startswith('text/html')
    assert b'id="study-config"' in body
    media = server.study_dir / 'media' / 'item_001.mp4'
    data = media.read_bytes()
    status, headers, body = http_request(server, 'GET', '/media/item_001.mp4')
    assert (status, headers['Content-Type'], body) == (200, 'video/mp4', data)
    status, headers, body = http_request(server, 'GET', '/media/item_001.mp4',
                                     headers={'Range': 'bytes=10-19'})
    assert (status, body) == (206, data[10:20])
    assert headers['Content-Range'] == f'bytes 10-19/{len(data)}'
    status, _, body = http_request(server, 'GET', '/media/item_001.mp4',
                               headers={'Range': 'bytes=-7'})
    assert (status, body) == (206, data[-7:])
    status, headers, _ = http_request(server, 'GET', '/media/item_001.mp4',
                                  headers={'Range': f'bytes={len(data)}-'})
    assert status == 416 and headers['Content-Range'] == f'bytes */{len(data)}'


def test_server_refuses_the_key_and_paths_outside_the_study(server):
    (server.study_dir.parent / 'secret.txt').write_text('outside')
    source = server.key['items']['item_000']['source'].encode()
    for path in ('/study.json', '/../study.json', '/media/../study.json', '/%2e%2e/study.json',
                 '/../secret.txt', '/media/%2e%2e/%2e%2e/secret.txt', '/responses/',
                 '/media/', '/media/item_999.mp4'):
        status, _, body = http_request(server, 'GET', path)
        assert status == 404, path
        assert b'not part of the study page' in body and source not in body, path
        assert b'outside' not in body and b'"items"' not in body, path


def test_server_stores_each_submission_in_a_new_file(server):
    key = server.key
    status, answer = _post(server, _submission(key, 'alice', lambda item: (4, 3, 5)))
    assert status == 200 and answer['ok'] and answer['items'] == 6
    first = server.study_dir / answer['saved']
    stored = first.read_bytes()
    assert json.loads(stored)['ratings'][0] == dict(item='item_000', aq=4, vq=3, av=5)
    status, again = _post(server, _submission(key, 'alice', lambda item: (1, 1, 1)))
    assert status == 200 and again['saved'] != answer['saved']
    assert first.read_bytes() == stored  # the first submission is untouched
    files = sorted((server.study_dir / 'responses').iterdir())
    assert [f.name for f in files] == sorted([Path(answer['saved']).name,
                                              Path(again['saved']).name])


def test_server_rejects_bad_submissions_with_a_message(server):
    key = server.key
    good = lambda item: (3, 3, 3)  # noqa: E731
    partial = _submission(key, 'bob', good)
    partial['ratings'] = partial['ratings'][:4]
    unknown = _submission(key, 'bob', good)
    unknown['ratings'][2]['item'] = 'item_999'
    cases = [
        (b'{"ratings": [', 'not valid JSON'),
        (b'\xff\xfe', 'not valid JSON'),
        ([1, 2], 'expected a JSON object'),
        (_submission(key, 'bob', good, study_id='elsewhere'), "study_id: 'elsewhere' is not"),
        (_submission(key, 'bob', good, format='v0'), 'format: expected'),
        (_submission(key, '  ', good), 'rater_id: missing or empty'),
        (_submission(key, 'bob', good, finished_at='yesterday'), 'finished_at: .* ISO 8601'),
        (partial, '2 of 6 items are not rated'),
        (unknown, r"ratings\[2\]\.item: 'item_999' is not an item"),
        (_submission(key, 'bob', lambda item: (3, 6, 3)), r'\.vq: 6 is not an integer score'),
        (_submission(key, 'bob', lambda item: (0, 3, 3)), r'\.aq: 0 is not'),
        (_submission(key, 'bob', lambda item: ('4', 3, 3)), r"\.aq: '4' is not"),
        (_submission(key, 'bob', lambda item: (3, 3, 2.5)), r'\.av: 2.5 is not'),
    ]
    for data, message in cases:
        status, answer = _post(server, data)
        assert status == 400 and not answer['ok'], message
        assert re.search(message, answer['error']), (message, answer['error'])
    status, answer = _post(server, b'{' + b' ' * 70_000 + b'}')
    assert status == 413 and 'exceeds the limit' in answer['error']
    assert not (server.study_dir / 'responses').exists()  # nothing stored


def test_server_listens_on_loopback_only(study):
    with pytest.raises(StudyError, match="--host '0.0.0.0': .*loopback only"):
        StudyServer(study[0], host='0.0.0.0', port=0)


# --- the page in a real browser -------------------------------------------------------------

BROWSER_SCORES = {  # rater -> method -> (aq, vq, av), the same for each of the method's items
    'rater-one': {'AlphaMethod': (4, 2, 5), 'BetaMethod': (2, 3, 1)},
    'rater-two': {'AlphaMethod': (5, 2, 4), 'BetaMethod': (1, 3, 2)},
}


@pytest.fixture
def chromium():
    """Headless Debian chromium through its own chromedriver, with a fresh profile (its folder
    ``downloads/`` receives downloads); or skip (fail when PAVDIT_REQUIRE_BROWSER=1) saying how
    to install them."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append('the selenium package (requirements/tests.txt)')
    if missing:
        message = (f'browser test needs {", ".join(missing)}: apt-get install -y chromium '
                   f'chromium-driver; pip install -r requirements/tests.txt')
        if os.environ.get('PAVDIT_REQUIRE_BROWSER') == '1':
            pytest.fail(message + ' (PAVDIT_REQUIRE_BROWSER=1)')
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix='pavdit-chromium-')
    for flag in ('--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
                 '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync',
                 '--autoplay-policy=no-user-gesture-required', f'--user-data-dir={profile}'):
        options.add_argument(flag)
    # An explicit driver path: selenium-manager never runs, so nothing is downloaded.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    # Ratings of a page opened as a file arrive as a download: let it land in the profile.
    try:
        driver.execute_cdp_cmd('Browser.setDownloadBehavior',
                               dict(behavior='allow', downloadPath=f'{profile}/downloads'))
        yield driver, Path(profile)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _rate_everything(driver, url, rater, key, done='Your ratings are saved'):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 20)
    driver.get(url)
    driver.find_element(By.ID, 'rater-id').send_keys(rater)
    driver.find_element(By.ID, 'start-button').click()
    total = len(key['items'])
    shown = []
    for index in range(total):
        wait.until(lambda d: d.find_element(By.ID, 'progress').text == f'{index + 1} / {total}')
        item = driver.find_element(By.ID, 'item-id').text
        shown.append(item)
        if index == 0:
            # The video is served (ranges) and decodes in Chromium: metadata with its duration.
            wait.until(lambda d: d.execute_script(
                'const v = document.getElementById("player"); return v.error ? -1 : '
                'v.readyState;') >= 1)
            duration = driver.execute_script('return document.getElementById("player").duration')
            assert abs(duration - key['items'][item]['duration']) < 0.1
            driver.find_element(By.ID, 'next-button').click()  # unrated: refused
            assert 'Please rate AQ, VQ, A-V' in driver.find_element(By.ID,
                                                                    'rating-message').text
        scores = BROWSER_SCORES[rater][key['items'][item]['method']]
        for criterion, value in zip(('aq', 'vq', 'av'), scores):
            driver.find_element(By.ID, f'{criterion}-{value}').click()
        if index == 1:  # back and forth keeps the ratings
            driver.find_element(By.ID, 'prev-button').click()
            wait.until(lambda d: d.find_element(By.ID, 'progress').text == f'1 / {total}')
            assert driver.find_element(By.ID, 'aq-{}'.format(BROWSER_SCORES[rater][
                key['items'][shown[0]]['method']][0])).is_selected()
            driver.find_element(By.ID, 'next-button').click()
            wait.until(lambda d: d.find_element(By.ID, 'progress').text == f'2 / {total}')
            assert driver.find_element(By.ID, f'aq-{scores[0]}').is_selected()
        driver.find_element(By.ID, 'next-button').click()
    wait.until(lambda d: done in d.find_element(By.ID, 'done-message').text)
    return shown


def test_a_rater_session_in_chromium_is_stored_and_scored(chromium, sample_dirs, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver, profile = chromium
    out = tmp_path / 'study'
    run_tool('tools/human_eval.py', 'build', '--per-method', '3', '--out', str(out), '--seed',
             '3', *[arg for name, folder in sample_dirs.items()
                    for arg in ('--method', f'{name}={folder}')])
    key = load_key(out)
    with _serving(out) as server:
        orders = {'rater-one': _rate_everything(driver, server.url, 'rater-one', key)}
        # The server refuses the next submission: the page shows its message and retries.
        server.key = dict(key, study_id='another-study')
        orders['rater-two'] = _rate_everything(driver, server.url, 'rater-two', key,
                                               done='not saved')
        error = driver.find_element(By.ID, 'submit-error').text
        assert "The server did not accept the ratings: submission rejected: study_id: " \
               f"'{key['study_id']}' is not this study" in error
        server.key = key
        driver.find_element(By.ID, 'retry-button').click()
        WebDriverWait(driver, 20).until(lambda d: 'Your ratings are saved' in d.find_element(
            By.ID, 'done-message').text)
    # Opened as a file (no server): the same session ends in a JSON download.
    _rate_everything(driver, (out / 'index.html').as_uri(), 'rater-one', key,
                     done='downloaded as')
    downloads = profile / 'downloads'
    deadline = time.monotonic() + 10
    while not list(downloads.glob('ratings_*.json')) and time.monotonic() < deadline:
        time.sleep(0.1)
    (downloaded,) = downloads.glob('ratings_*.json')
    offline = load_submission(downloaded, key)
    assert offline['rater_id'] == 'rater-one' and offline['order'] == orders['rater-one']
    stored = [json.loads(p.read_text()) for p in sorted((out / 'responses').glob('*.json'))]
    assert sorted(s['rater_id'] for s in stored) == sorted(BROWSER_SCORES)
    for submission in stored:
        assert submission['order'] == orders[submission['rater_id']]
        assert sorted(submission['order']) == sorted(key['items'])
    assert orders['rater-one'] != orders['rater-two']  # each rater has an own order

    table = run_tool('tools/human_eval.py', 'score', str(out), '--bootstrap', '500').stdout
    # AlphaMethod: AQ (4 + 5) / 2 = 4.5, VQ 2, A-V (5 + 4) / 2 = 4.5; BetaMethod: AQ 1.5,
    # VQ 3, A-V 1.5. Every item of a method got the same scores, so each interval is a point.
    assert '| AlphaMethod | 4.50 [4.50, 4.50] | 2.00 [2.00, 2.00] | 4.50 [4.50, 4.50] |' in table
    assert '| BetaMethod | 1.50 [1.50, 1.50] | 3.00 [3.00, 3.00] | 1.50 [1.50, 1.50] |' in table
    assert "Krippendorff's α (ordinal)" in table and (out / 'scores.md').read_text().count(
        'AlphaMethod') == 1
    assert json.loads((out / 'scores.json').read_text())['methods']['BetaMethod']['vq'][
        'mean'] == 3.0
