"""Serve a study folder to raters on the loopback interface and store their submissions.

Routes (nothing else is served; in particular never ``study.json``, ``responses/`` or any path
outside the folder: requests are looked up in a fixed table, never joined onto the folder):

- ``GET|HEAD /``, ``/index.html``, ``/app.js``, ``/style.css``: the page;
- ``GET|HEAD /media/item_NNN.mp4``: a sample, with single HTTP byte ranges (``Range: bytes=a-b``,
  answered ``206``) so browsers can seek;
- ``POST /submit``: a JSON submission (format in :mod:`.submissions`). Answers
  ``200 {"ok": true, "saved": "responses/<file>", "items": n}``, or ``400 {"ok": false, "error":
  message}`` for invalid JSON or a submission that does not fit the study, ``411`` without a
  Content-Length, ``413`` for a body over ``max_body`` bytes.

The HTTP plumbing (JSON answers, byte ranges) is :mod:`pavdit.utils.local_http`.
"""
import sys
import urllib.parse
from http import HTTPStatus
from pathlib import Path

from pavdit.evaluation.human_study.study import (PAGE_FILES, RESPONSES_DIR, StudyError,
                                                 load_key)
from pavdit.evaluation.human_study.submissions import (SubmissionError, store_submission,
                                                       validate_submission)
from pavdit.utils.local_http import (LocalHTTPServer, LocalRequestHandler, RequestRefused,
                                     is_loopback)

MAX_BODY_BYTES = 2 * 1024 * 1024  # a 3,000-item submission is about 300 KB


def check_loopback(host: str) -> None:
    """Raise StudyError unless ``host`` is a loopback address (raters' data stay local)."""
    if not is_loopback(host):
        raise StudyError(f'--host {host!r}: the study server listens on loopback only '
                         f'(127.0.0.1, ::1 or localhost)')


class StudyRequestHandler(LocalRequestHandler):
    """Handles the routes of the module docstring for ``self.server`` (a StudyServer)."""
    server_version = 'pavdit-human-eval'

    def answer_get(self, head: bool) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        file = self.server.public.get(path)
        if file is None:
            self.send_refusal(HTTPStatus.NOT_FOUND, f'{path}: not part of the study page (only '
                                                    f'the page and its media are served)')
            return
        self.send_file(file, head)

    def do_POST(self):  # noqa: N802
        path = urllib.parse.urlsplit(self.path).path
        if path != '/submit':
            self.send_refusal(HTTPStatus.NOT_FOUND, f'{path}: POST only to /submit')
            return
        try:
            data = self.read_json(self.server.max_body, 'submission')
        except RequestRefused as refused:
            self.send_refusal(refused.status, str(refused), refused.close)
            return
        try:
            submission = validate_submission(data, self.server.key)
        except SubmissionError as error:
            self.send_refusal(HTTPStatus.BAD_REQUEST, f'submission rejected: {error}')
            return
        saved = store_submission(submission, self.server.study_dir / RESPONSES_DIR)
        relative = saved.relative_to(self.server.study_dir).as_posix()
        self.log_message('stored %s (rater %r, %d items)', relative, submission['rater_id'],
                         len(submission['ratings']))
        self.send_json(HTTPStatus.OK, dict(ok=True, saved=relative,
                                           items=len(submission['ratings'])))


class StudyServer(LocalHTTPServer):
    """A threading HTTP server for one study folder (routes in the module docstring).

    ``port=0`` picks a free port; :attr:`url` tells which.
    """

    def __init__(self, study_dir, host: str = '127.0.0.1', port: int = 8000,
                 max_body: int = MAX_BODY_BYTES, quiet: bool = False):
        check_loopback(host)
        self.study_dir = Path(study_dir).resolve()
        self.key = load_key(self.study_dir)
        self.public = {f'/{name}': self.study_dir / name for name in PAGE_FILES}
        self.public['/'] = self.study_dir / 'index.html'
        self.public.update({f'/{info["media"]}': self.study_dir / info['media']
                            for info in self.key['items'].values()})
        missing = [str(p) for p in self.public.values() if not p.is_file()]
        if missing:
            raise StudyError(f'{self.study_dir}: study files missing: {", ".join(missing[:5])}')
        self.max_body, self.quiet = max_body, quiet
        super().__init__(host, port, StudyRequestHandler)


def serve(study_dir, host: str = '127.0.0.1', port: int = 8000) -> None:
    """Serve ``study_dir`` until Ctrl-C, printing where to point the raters' browser."""
    with StudyServer(study_dir, host, port) as server:
        print(f'Study {server.key["title"]!r} ({len(server.key["items"])} items) at {server.url}\n'
              f'Submissions are stored in {server.study_dir / RESPONSES_DIR}. Ctrl-C stops.',
              flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print('stopped', file=sys.stderr)
