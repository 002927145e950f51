"""Human evaluation of sounding videos (the paper's Table 4, MM-Diffusion's protocol): raters
score audio quality (AQ), video quality (VQ) and audio-video alignment (A-V) on a 5-point scale.

- :mod:`.study`: folder layout, criteria and scale, the private key file;
- :mod:`.build`: draw blinded samples per method and write the study folder with its page;
- :mod:`.submissions`: the submission format, its validation and never-overwriting storage;
- :mod:`.server`: a loopback HTTP server for the page, the media (byte ranges) and submissions;
- :mod:`.agreement`: Krippendorff's alpha;
- :mod:`.scoring`: means, bootstrap confidence intervals, alpha, the Table 4-shaped table.

The page itself (``page/index.html``, ``app.js``, ``style.css``) is package data. The command
line is ``tools/human_eval.py``.
"""
from pavdit.evaluation.human_study.agreement import krippendorff_alpha
from pavdit.evaluation.human_study.build import build_study
from pavdit.evaluation.human_study.scoring import format_table, score_study, write_scores
from pavdit.evaluation.human_study.server import StudyServer, serve
from pavdit.evaluation.human_study.study import StudyError, load_key
from pavdit.evaluation.human_study.submissions import SubmissionError, validate_submission

__all__ = ['StudyError', 'StudyServer', 'SubmissionError', 'build_study', 'format_table',
           'krippendorff_alpha', 'load_key', 'score_study', 'serve', 'validate_submission',
           'write_scores']
