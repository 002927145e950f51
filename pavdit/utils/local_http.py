"""Plumbing shared by the project's small local web servers (the human-study page, the sampling
page), on the standard library's ``http.server``: JSON answers and size-limited JSON bodies, files
with single byte ranges (browsers seek in videos with them), and which hosts count as loopback.

A server subclasses :class:`LocalHTTPServer` (it needs a ``quiet`` attribute) and its handler
:class:`LocalRequestHandler`, routing paths through a fixed table of its own: nothing here joins a
request path onto a folder.
"""
import ipaddress
import json
import socket
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CHUNK = 64 * 1024
DISCARD_LIMIT = 64 * 1024 * 1024  # a refused body larger than this is not even read
CONTENT_TYPES = {'.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
                 '.css': 'text/css; charset=utf-8', '.mp4': 'video/mp4', '.png': 'image/png',
                 '.json': 'application/json; charset=utf-8'}


class RangeNotSatisfiable(Exception):
    """A syntactically valid byte range that starts past the end of the file."""


class RequestRefused(Exception):
    """A request answered with ``status`` and ``{"ok": false, "error": message}``; ``close``
    ends the connection (where the request's body could not be read to its end)."""

    def __init__(self, status: HTTPStatus, message: str, close: bool = False):
        super().__init__(message)
        self.status, self.close = status, close


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


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps a server reachable from this machine only."""
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


class LocalRequestHandler(BaseHTTPRequestHandler):
    """Answer helpers for the handlers of :class:`LocalHTTPServer` subclasses."""
    sys_version = ''
    protocol_version = 'HTTP/1.1'  # keep-alive for the many range requests of a video; every
    # answer carries a Content-Length, which HTTP/1.1 needs

    def log_message(self, format, *args):  # noqa: A002 (the base class's signature)
        if not self.server.quiet:
            super().log_message(format, *args)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.answer_get(head=False)

    def do_HEAD(self):  # noqa: N802
        self.answer_get(head=True)

    def answer_get(self, head: bool) -> None:
        """Abstract: answer a GET (``head=False``) or a HEAD (headers only)."""
        raise NotImplementedError(f'{type(self).__name__} must define answer_get(head)')

    def send_json(self, status: HTTPStatus, payload: dict, close: bool = False,
                  head: bool = False) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header('Content-Type', CONTENT_TYPES['.json'])
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Cache-Control', 'no-store')
        if close:
            self.send_header('Connection', 'close')  # also makes the handler close it
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def send_refusal(self, status: HTTPStatus, message: str, close: bool = False) -> None:
        """``status`` with ``{"ok": false, "error": message}``."""
        self.send_json(status, dict(ok=False, error=message), close)

    def read_json(self, max_body: int, what: str) -> Any:
        """The request's JSON body (``what`` names it in messages), or RequestRefused: 411
        without a Content-Length, 413 over ``max_body`` bytes, 400 when it is not JSON."""
        length = self.headers.get('Content-Length')
        if length is None or not length.isdigit():
            # Where the body ends is unknown: no further request on this connection.
            raise RequestRefused(HTTPStatus.LENGTH_REQUIRED,
                                 'missing or invalid Content-Length header', close=True)
        if int(length) > max_body:
            self._discard_body(int(length))
            raise RequestRefused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                                 f'{what} of {length} bytes exceeds the limit of {max_body} '
                                 f'bytes', close=True)
        body = self.rfile.read(int(length))
        try:
            return json.loads(body.decode('utf-8'))
        except (UnicodeDecodeError, ValueError) as error:
            raise RequestRefused(HTTPStatus.BAD_REQUEST,
                                 f'the {what} is not valid JSON: {error}') from None

    def _discard_body(self, length: int) -> None:
        """Read and drop a refused body (up to DISCARD_LIMIT), so that closing the connection
        does not reset it before the client has read the error answer."""
        remaining = min(length, DISCARD_LIMIT)
        while remaining > 0:
            chunk = self.rfile.read(min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)

    def send_bytes(self, body: bytes, content_type: str, head: bool) -> None:
        """A small in-memory file (a page), whole."""
        self.send_response(HTTPStatus.OK)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Cache-Control', 'no-cache')
        self.send_header('X-Content-Type-Options', 'nosniff')
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def send_file(self, file: Path, head: bool) -> None:
        """``file`` whole, or the single byte range the request's ``Range`` header asks for."""
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
        # No Last-Modified: in a study, file times could hint which method a sample came from.
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


class LocalHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server on ``host`` (IPv4 or IPv6) and ``port`` (0 picks a free one;
    :attr:`url` tells which); subclasses set ``quiet`` before calling ``__init__``."""
    daemon_threads = True
    quiet = False

    def __init__(self, host: str, port: int, handler: type[LocalRequestHandler]):
        if ':' in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f'http://[{host}]:{port}/' if ':' in host else f'http://{host}:{port}/'
