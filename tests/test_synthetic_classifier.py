"""The synthetic-set classifier: its metric, checkpoint round trip, bad inputs; the latent-box
check of the statistics hook."""
import pytest
import torch

from pavdit.data.synthetic import CLASSES, SyntheticSoundingVideo
from pavdit.evaluation import SyntheticClassifierMetric
from pavdit.evaluation.class_metric import event_agreement
from pavdit.evaluation.detectors.synthetic_classifier import (SyntheticClipClassifier,
                                                               load_synthetic_classifier)
from pavdit.models.generators.latent_stats import LatentNormalizer


def test_event_agreement_by_hand():
    video = [0, 1, 0, 0, 1, 0, 1, 0]
    audio = [0, 1, 0, 0, 0, 1, 1, 0]
    # both: frames 1 and 6; either: frames 1, 4, 5, 6
    assert event_agreement(video, audio) == (2, 4)
    assert event_agreement([0, 0], [0, 0]) == (0, 0)


@pytest.fixture
def classifier_file(tmp_path):
    torch.manual_seed(0)
    model = SyntheticClipClassifier(len(CLASSES), width=16)
    path = tmp_path / 'classifier.pth'
    record = dict(classes=list(CLASSES), width=16, resolution=32, num_frames=16, accuracy=0.9,
                  event_agreement=0.8)
    torch.save(dict(state_dict=model.state_dict(), classifier=record), path)
    return path, model


def test_checkpoint_round_trip_and_shapes(classifier_file):
    path, model = classifier_file
    loaded, record = load_synthetic_classifier(str(path))
    video, audio = torch.rand(2, 3, 16, 32, 32) * 2 - 1, torch.rand(2, 1, 16, 64, 16) * 2 - 1
    logits = loaded(video, audio)
    assert logits['class'].shape == (2, len(CLASSES))
    assert logits['video_events'].shape == logits['audio_events'].shape == (2, 16)
    torch.testing.assert_close(logits['class'], model.eval()(video, audio)['class'])
    assert record['classes'] == list(CLASSES)


def test_metric_scores_against_the_prompted_class(classifier_file):
    path, model = classifier_file
    item = SyntheticSoundingVideo(num_items=1, resolution=32)[0]
    predicted = int(model.eval().judge(item['video'][None], item['audio'][None])[0])
    metric = SyntheticClassifierMetric(checkpoint=str(path))
    other = CLASSES[(predicted + 1) % len(CLASSES)]
    metric.process(None, [dict(video=item['video'], audio=item['audio'],
                               class_name=CLASSES[predicted]),
                          dict(video=item['video'], audio=item['audio'], class_name=other)])
    scores = metric.compute_metrics(metric.results)
    assert scores['class_accuracy'] == 0.5
    assert 0.0 <= scores['event_agreement'] <= 1.0
    assert scores['reference_accuracy'] == 0.9
    with pytest.raises(ValueError, match='classifier scores the synthetic set'):
        metric.process(None, [dict(video=item['video'], audio=item['audio'],
                                   class_name='dog barking')])


def test_loading_another_file_names_it(tmp_path):
    path = tmp_path / 'not_a_classifier.pth'
    torch.save(dict(state_dict={}), path)
    with pytest.raises(ValueError, match='not_a_classifier.pth'):
        load_synthetic_classifier(str(path))


def test_outside_share_of_the_reflection_box():
    normalizer = LatentNormalizer(['a'], channels=1, bound_margin=0.0)
    normalizer.fit([dict(a=torch.linspace(-1, 1, 101).reshape(1, 1, 1, 101))])
    # Box = the fitted range [-1, 1] (mean 0); 2 of 8 held-out values lie outside it.
    held_out = torch.tensor([-2.0, -0.5, 0.0, 0.5, 0.9, 1.0, 1.5, -1.0]).reshape(1, 1, 1, 8)
    assert normalizer.outside_share(dict(a=held_out)) == pytest.approx(2 / 8)
