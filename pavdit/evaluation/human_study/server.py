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
"""
import ipaddress
import json
import socket
import sys
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pavdit.evaluation.human_study.study import (PAGE_FILES, RESPONSES_DIR, StudyError,
                                                 load_key)
from pavdit.evaluation.human_study.submissions import (SubmissionError, store_submission,
                                                       validate_submission)

MAX_BODY_BYTES = 2 * 1024 * 1024  # a 3,000-item submission is about 300 KB
CHUNK = 64 * 1024
DISCARD_LIMIT = 64 * 1024 * 1024  # a refused body larger than this is not even read
CONTENT_TYPES = {'.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
                 '.css': 'text/css; charset=utf-8', '.mp4': 'video/mp4'}


class RangeNotSatisfiable(Exception):
    """A syntactically valid byte range that starts past the end of the file."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``Range`` header -> inclusive ``(first, last)`` byte positions, or None to send the whole
    file (no header, a malformed one or several ranges, which RFC 9110 lets a server ignore)."""
    if not header or not header.startswith('bytes=') or ',' in header:
        return None
    first, sep, last = header[len('bytes='):].strip().partition('-')
    if not sep or not (first or last) or not (first or '0').isdigit() or \
            not (last or '0').isdigit():
        return None
    if not first:  # "bytes=-N": the last N bytes
        if int(last) == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - int(last)), size - 1
    start, end = int(first), int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable
    return start, min(end, size - 1)


def check_loopback(host: str) -> None:
    """Raise StudyError unless ``host`` is a loopback address (raters' data stay local)."""
    if host == 'localhost':
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise StudyError(f'--host {host!r}: the study server listens on loopback only '
                         f'(127.0.0.1, ::1 or localhost)')


class StudyRequestHandler(BaseHTTPRequestHandler):
    """Handles the routes of the module docstring for ``self.server`` (a StudyServer)."""
    server_version = 'pavdit-human-eval'
    sys_version = ''
    protocol_version = 'HTTP/1.1'  # keep-alive for the many range requests of a video; every
    # answer carries a Content-Length, which HTTP/1.1 needs

    def log_message(self, format, *args):  # noqa: A002 (the base class's signature)
        if not self.server.quiet:
            super().log_message(format, *args)

    def _send_json(self, status: HTTPStatus, payload: dict, close: bool = False) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json; charset=utf-8')
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Cache-Control', 'no-store')
        if close:
            self.send_header('Connection', 'close')  # also makes the handler close it
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str, close: bool = False) -> None:
        self._send_json(status, dict(ok=False, error=message), close)

    def _discard_body(self, length: int) -> None:
        """Read and drop a refused body (up to DISCARD_LIMIT), so that closing the connection
        does not reset it before the client has read the error answer."""
        remaining = min(length, DISCARD_LIMIT)
        while remaining > 0:
            chunk = self.rfile.read(min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self._send_file(head=False)

    def do_HEAD(self):  # noqa: N802
        self._send_file(head=True)

    def _send_file(self, head: bool) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        file = self.server.public.get(path)
        if file is None:
            self._error(HTTPStatus.NOT_FOUND, f'{path}: not part of the study page (only the '
                                              f'page and its media are served)')
            return
        size = file.stat().st_size
        try:
            byte_range = parse_range(self.headers.get('Range'), size)
        except RangeNotSatisfiable:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header('Content-Range', f'bytes */{size}')
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        start, end = byte_range or (0, size - 1)
        self.send_response(HTTPStatus.PARTIAL_CONTENT if byte_range else HTTPStatus.OK)
        self.send_header('Content-Type', CONTENT_TYPES.get(file.suffix,
                                                           'application/octet-stream'))
        self.send_header('Content-Length', str(end - start + 1))
        self.send_header('Accept-Ranges', 'bytes')
        if byte_range:
            self.send_header('Content-Range', f'bytes {start}-{end}/{size}')
        # No Last-Modified: file times could hint which method a sample came from.
        self.send_header('Cache-Control', 'no-cache')
        self.send_header('X-Content-Type-Options', 'nosniff')
        self.end_headers()
        if head:
            return
        remaining = end - start + 1
        try:
            with file.open('rb') as handle:
                handle.seek(start)
                while remaining > 0:
                    chunk = handle.read(min(CHUNK, remaining))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    remaining -= len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # browsers drop media requests they no longer need (seeking, page change)

    def do_POST(self):  # noqa: N802
        path = urllib.parse.urlsplit(self.path).path
        if path != '/submit':
            self._error(HTTPStatus.NOT_FOUND, f'{path}: POST only to /submit')
            return
        length = self.headers.get('Content-Length')
        if length is None or not length.isdigit():
            self._error(HTTPStatus.LENGTH_REQUIRED, 'missing or invalid Content-Length header',
                        close=True)  # where the body ends is unknown: no further request
            return
        if int(length) > self.server.max_body:
            self._discard_body(int(length))
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                        f'submission of {length} bytes exceeds the limit of '
                        f'{self.server.max_body} bytes', close=True)
            return
        body = self.rfile.read(int(length))
        try:
            data = json.loads(body.decode('utf-8'))
        except (UnicodeDecodeError, ValueError) as error:
            self._error(HTTPStatus.BAD_REQUEST, f'the submission is not valid JSON: {error}')
            return
        try:
            submission = validate_submission(data, self.server.key)
        except SubmissionError as error:
            self._error(HTTPStatus.BAD_REQUEST, f'submission rejected: {error}')
            return
        saved = store_submission(submission, self.server.study_dir / RESPONSES_DIR)
        relative = saved.relative_to(self.server.study_dir).as_posix()
        self.log_message('stored %s (rater %r, %d items)', relative, submission['rater_id'],
                         len(submission['ratings']))
        self._send_json(HTTPStatus.OK, dict(ok=True, saved=relative,
                                            items=len(submission['ratings'])))


class StudyServer(ThreadingHTTPServer):
    """A threading HTTP server for one study folder (routes in the module docstring).

    ``port=0`` picks a free port; :attr:`url` tells which.
    """
    daemon_threads = True

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
        if ':' in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), StudyRequestHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f'http://[{host}]:{port}/' if ':' in host else f'http://{host}:{port}/'


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
