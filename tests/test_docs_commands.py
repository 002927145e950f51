"""Every command in the user docs runs as written.

Which fenced blocks run (also stated in docs/getting_started.md, "Commands in these docs"):

- ```bash (or sh / shell) blocks run with ``bash -euo pipefail``, ```python (or py) blocks with
  ``python -``; both from the root of a scratch copy of the repository, with ``.venv/bin`` first
  on PATH (so ``python`` and ``.venv/bin/python`` are the same interpreter).
- A block does not run when the nearest non-blank line above its opening fence is
  ``<!-- not-run: reason -->``; the reason is mandatory (paper-scale training, GPU only,
  multi-node, needs a dataset or weights that must be downloaded, ...).
- A python block whose first line is a comment naming a file (``# my_blocks.py``,
  ``# configs/my_gated.py``) is also saved under that path, so later blocks can use it.
- Blocks in other languages or none (layouts, diagrams, output) never run.
- The runnable blocks of one doc run in order, in one fresh scratch copy of the working tree
  (tracked and untracked-but-not-ignored files, so uncommitted edits are what is tested; .venv is
  symlinked; work_dirs/ and data/ are not copied), so a block can use what an earlier block wrote.
  The first failing block fails the doc's test. Runs never write into the real checkout.
"""
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = ['README.md', 'docs/getting_started.md', 'docs/data.md', 'docs/mdsa.md',
        'docs/generation.md', 'docs/evaluation.md', 'docs/benchmark.md', 'docs/plugins.md',
        'docs/distributed.md']
BLOCK_TIMEOUT = 300  # seconds per block; each doc's blocks together take well under a minute
LANGUAGES = {'bash': 'bash', 'sh': 'bash', 'shell': 'bash', 'python': 'python', 'py': 'python'}
NOT_RUN = re.compile(r'^<!--\s*not-run\s*:(.*?)-->\s*$')
FENCE = re.compile(r'^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$')
FILE_COMMENT = re.compile(r'^#\s*(?P<path>[\w.-]+(?:/[\w.-]+)*\.py)\s*$')
REPO_PATH = re.compile(r'(?<![\w./-])((?:configs|tools|scripts|tests|docs)/[\w./-]*?'
                       r'\.(?:py|sh|md))(?![\w/])')
NOT_COPIED = ('.git', '.venv', 'work_dirs', 'data')
TRAP = ("trap 'echo \"docs-test: line $((LINENO - 1)) of the block exited $?: $BASH_COMMAND\" >&2'"
        " ERR\n")
FAILED_COMMAND = re.compile(r'^docs-test: line (\d+) of the block exited (\d+): (.*)', re.S | re.M)


@dataclass
class Block:
    doc: str
    line: int  # 1-based line of the opening fence
    language: str  # the fence's info string
    code: str
    not_run: Optional[str]  # the stated reason, or None when the block runs

    @property
    def runner(self) -> Optional[str]:
        return LANGUAGES.get(self.language.lower())

    @property
    def saved_as(self) -> Optional[str]:
        if self.runner != 'python':
            return None
        first = self.code.lstrip('\n').split('\n', 1)[0]
        match = FILE_COMMENT.match(first.strip())
        return match['path'] if match and '..' not in match['path'] else None


def parse_blocks(doc: str) -> List[Block]:
    """The fenced blocks of a doc with their not-run annotations; malformed annotations fail."""
    lines = (REPO_ROOT / doc).read_text().splitlines()
    blocks, index, annotation = [], 0, None  # annotation: (line index, reason) awaiting a fence
    while index < len(lines):
        stripped = lines[index].strip()
        match = FENCE.match(lines[index])
        if not match:
            if stripped and annotation is not None:
                raise AssertionError(f'{doc}:{annotation[0] + 1}: a not-run annotation must be '
                                     f'the line right before a fenced block')
            if stripped.startswith('<!--') and 'not-run' in stripped:
                found = NOT_RUN.match(stripped)
                if not found or not found[1].strip():
                    raise AssertionError(f'{doc}:{index + 1}: write <!-- not-run: reason --> '
                                         f'(the reason is mandatory), not {stripped!r}')
                annotation = (index, found[1].strip())
            index += 1
            continue
        fence, indent, start, body = match['fence'], len(match['indent']), index, []
        index += 1
        while index < len(lines):
            closing = lines[index].strip()
            if closing.startswith(fence) and not closing.strip(fence[0]):
                break
            line = lines[index]
            body.append(line[min(indent, len(line) - len(line.lstrip(' '))):])
            index += 1
        index += 1  # past the closing fence
        blocks.append(Block(doc, start + 1, match['info'], '\n'.join(body) + '\n',
                            annotation[1] if annotation else None))
        annotation = None
    if annotation is not None:
        raise AssertionError(f'{doc}:{annotation[0] + 1}: a not-run annotation must be the line '
                             f'right before a fenced block')
    return blocks


def runnable(blocks: List[Block]) -> List[Block]:
    return [b for b in blocks if b.runner is not None and b.not_run is None]


def scratch_copy(dest: Path) -> Path:
    """Copy the working tree (minus .venv, work_dirs, data, ignored files) and link .venv."""
    try:
        listed = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others',
                                 '--exclude-standard'], cwd=REPO_ROOT, check=True,
                                capture_output=True).stdout.decode().split('\0')
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk the tree
        listed = [str(p.relative_to(REPO_ROOT)) for p in REPO_ROOT.rglob('*')
                  if '__pycache__' not in p.parts and '.egg-info' not in str(p)]
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if Path(name).parts[0] in NOT_COPIED or not source.is_file():
            continue  # deleted in the working tree, a submodule, or excluded
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / name)
    venv = REPO_ROOT / '.venv' if (REPO_ROOT / '.venv').is_dir() else Path(sys.prefix)
    (dest / '.venv').symlink_to(venv, target_is_directory=True)
    return dest


def run_block(block: Block, root: Path) -> Tuple[float, float]:
    """Run one block from ``root``; fail with the doc, line, command and output tails.
    Returns the wall-clock and CPU seconds it took."""
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    env['PATH'] = f'{root / ".venv" / "bin"}{os.pathsep}{env.get("PATH", "")}'
    if block.saved_as:
        (root / block.saved_as).parent.mkdir(parents=True, exist_ok=True)
        (root / block.saved_as).write_text(block.code)
    if block.runner == 'bash':  # the ERR trap names the failing command and its line
        command = ['bash', '-euo', 'pipefail', '-c', TRAP + block.code]
    else:
        command = [str(root / '.venv' / 'bin' / 'python'), '-']
    # Output goes to files, not pipes: a stray grandchild holding a pipe cannot hang the test.
    with tempfile.TemporaryFile('w+') as out, tempfile.TemporaryFile('w+') as err:
        start, cpu = time.monotonic(), _children_cpu_seconds()
        proc = subprocess.Popen(command, cwd=root, env=env, text=True, start_new_session=True,
                                stdin=subprocess.PIPE, stdout=out, stderr=err)
        try:
            proc.communicate(block.code if block.runner == 'python' else None,
                             timeout=BLOCK_TIMEOUT)
            outcome = f'exited {proc.returncode}'
        except subprocess.TimeoutExpired:
            _kill_tree(proc.pid)
            proc.wait()
            outcome = f'timed out after {BLOCK_TIMEOUT} s'
        seconds, cpu = time.monotonic() - start, _children_cpu_seconds() - cpu
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if outcome != 'exited 0':
        failed = FAILED_COMMAND.search(stderr)
        where = (f'; its command at {block.doc}:{block.line + int(failed[1])} exited {failed[2]}:'
                 f'\n    {failed[3].strip()}' if failed else '')
        stdin_lines = re.findall(r'File "<stdin>", line (\d+)', stderr)
        if block.runner == 'python' and stdin_lines:  # a traceback: point at the doc line
            where = f'; the error is raised at {block.doc}:{block.line + int(stdin_lines[-1])}'
        pytest.fail(f'{block.doc}, {block.language} block at line {block.line} {outcome} '
                    f'({seconds:.1f} s){where}\n--- block ---\n{block.code}'
                    f'--- stderr (tail) ---\n{FAILED_COMMAND.sub("", stderr)[-4000:]}\n'
                    f'--- stdout (tail) ---\n{stdout[-1500:]}', pytrace=False)
    return seconds, cpu


def _kill_tree(pid: int) -> None:
    """SIGKILL a process, its process group and every descendant (torchrun's workers start
    sessions of their own)."""
    children = {}
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            parent = int(stat.read_text().rsplit(')', 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        found = children.get(todo.pop(), [])
        tree += found
        todo += found
    for kill, target in [(os.killpg, pid)] + [(os.kill, p) for p in tree]:
        try:
            kill(target, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def test_docs_exist():
    missing = [doc for doc in DOCS if not (REPO_ROOT / doc).is_file()]
    assert not missing, f'missing docs: {missing}'


def test_docs_annotations_are_well_formed():
    for doc in DOCS:
        parse_blocks(doc)  # raises on a malformed or reasonless annotation


def test_paths_named_in_docs_exist():
    """Stale docs: every configs/, tools/, scripts/, tests/ and docs/ file they name exists
    (files a doc block creates, such as the plugin example's config, excepted)."""
    created = {b.saved_as for doc in DOCS for b in parse_blocks(doc) if b.saved_as}
    stale = []
    for doc in DOCS:
        for number, line in enumerate((REPO_ROOT / doc).read_text().splitlines(), 1):
            for path in REPO_PATH.findall(line):
                if path not in created and not (REPO_ROOT / path).exists():
                    stale.append(f'{doc}:{number}: {path}')
    assert not stale, 'docs name files that do not exist:\n' + '\n'.join(stale)


@pytest.mark.slow
@pytest.mark.parametrize('doc', DOCS)
def test_doc_commands_run(doc, tmp_path):
    blocks = parse_blocks(doc)
    root = scratch_copy(tmp_path / 'repo')
    for block in blocks:
        if block.runner is not None and block.not_run is not None:
            print(f'{doc}:{block.line}: not run ({block.not_run})')
    for block in runnable(blocks):
        seconds, cpu = run_block(block, root)
        print(f'{doc}:{block.line}: {block.language} block ran in {seconds:.1f} s '
              f'({cpu:.1f} s CPU)')


@pytest.mark.slow
def test_scratch_copy_runs_its_own_code(tmp_path):
    """The blocks test the working tree's copy, not the editable install's source folder."""
    root = scratch_copy(tmp_path / 'repo')
    assert not (root / 'work_dirs').exists() and (root / 'tools' / 'train.py').is_file()
    block = Block('(scratch check)', 0, 'bash', 'python -c "import pavdit; print(pavdit.__file__)"'
                  ' > where.txt\n', None)
    run_block(block, root)
    assert Path((root / 'where.txt').read_text().strip()).is_relative_to(root)
