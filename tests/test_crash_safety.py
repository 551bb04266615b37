"""Crash safety of index builds: SIGKILL a build anywhere and the index directory still loads and
answers, as the old version or the new one (never a mix), and the next build cleans up.

Most trials fork a build from tests/_crash_worker.py (collab-qa imported once, the deterministic
FakeEmbedder: atomicity does not depend on the model) and kill it either right before its N-th
file-system operation or at a seeded random moment. Two slow trials kill the real
``collab-qa index`` command while it writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from collab_qa.answer import search_passages
from collab_qa.chunking import ChunkerConfig
from collab_qa.embedding import Embedder, FakeEmbedder
from collab_qa.index import CURRENT_FILE, LOCK_FILE, TMP_PREFIX, build_index, load_index
from collab_qa.search import Searcher
from collab_qa.store.local import LocalStore
from tests.conftest import CORPUS, ROOT

RANDOM_TRIALS = 24
SAMPLED_OPERATIONS = 8
SWITCH_AND_CLEANUP_OPS = 30


def make_new_corpus(corpus: Path, scenario: str) -> bool:
    """Apply a scenario's edits to a corpus copy; returns whether the build is a full one."""
    germany = corpus / "collaboration-in-germany.txt"
    if scenario in ("edit", "full"):
        germany.write_text(germany.read_text(encoding="utf-8").replace(
            "KI has no central post doc agreements", "KI has a zebrafish agreement"),
            encoding="utf-8")
        (corpus / "new-policy.md").write_text(
            "# Travel policy\n\n## Booking\n\nBook zebrafish conference travel through the "
            "travel office at travel@example.org.\n", encoding="utf-8")
    elif scenario == "remove":
        (corpus / "cutcancer-twinning-project.txt").unlink()
    elif scenario == "grow":
        for i in range(30):
            (corpus / f"grown-{i:02d}.md").write_text(
                f"# Report {i}\n\n" + " ".join(f"Sentence {j} of report {i} about topic {j % 7}."
                                               for j in range(120)), encoding="utf-8")
    return scenario == "full"


SCENARIOS = ("edit", "remove", "full", "grow")


@dataclass
class State:
    """What a whole index version holds, to tell old from new and spot a mix."""

    documents: dict[str, str]
    chunks: list[tuple[str, str]]
    vectors: np.ndarray
    top_hits: list[str]

    @classmethod
    def of(cls, index: LocalStore, embedder: Embedder) -> State:
        hits = search_passages(Searcher(index, embedder), "agreement contact biobank", k=3)
        return cls({d.id: d.sha256 for d in index.documents.values()},
                   [(c.doc_id, c.text) for c in index.chunks], np.asarray(index.vectors),
                   [h.chunk.id for h in hits])

    def same(self, other: State) -> bool:
        return (self.documents == other.documents and self.chunks == other.chunks
                and self.top_hits == other.top_hits
                and np.allclose(self.vectors, other.vectors, atol=1e-5))


@dataclass
class Fixture:
    root: Path
    old_index: Path
    old_version: str
    old_state: State
    new_states: dict[str, State]


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    # tmpfs when there is one: fsync is free there, and a SIGKILL (unlike a power cut) never
    # loses what the page cache holds, so the trials test the same thing, faster.
    shm = Path("/dev/shm")
    root = (Path(tempfile.mkdtemp(prefix="collab-qa-crash-", dir=shm)) if shm.is_dir()
            and os.access(shm, os.W_OK) else tmp_path_factory.mktemp("crash"))
    embedder = FakeEmbedder()
    old_index = root / "old-index"
    # Two versions, so the build under test also deletes one: its cleanup is a crash point too.
    older = root / "older-corpus"
    shutil.copytree(CORPUS, older)
    (older / "industry-collaboration-support.txt").unlink()
    build_index(older, old_index, embedder, ChunkerConfig())
    build_index(CORPUS, old_index, embedder, ChunkerConfig())
    old_state = State.of(load_index(old_index), embedder)
    new_states = {}
    for scenario in SCENARIOS:
        corpus = root / f"corpus-{scenario}"
        shutil.copytree(CORPUS, corpus)
        make_new_corpus(corpus, scenario)
        build_index(corpus, root / f"index-{scenario}", embedder, ChunkerConfig())
        new_states[scenario] = State.of(load_index(root / f"index-{scenario}"), embedder)
        assert not new_states[scenario].same(old_state)
    old_version = (old_index / CURRENT_FILE).read_text().strip()
    yield Fixture(root, old_index, old_version, old_state, new_states)
    shutil.rmtree(root, ignore_errors=True)


class Worker:
    """Client of the fork server in tests/_crash_worker.py."""

    def __init__(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
                   filter(None, [os.environ.get("PYTHONPATH"), str(ROOT)]))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests._crash_worker"], cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._read() == {"ready": True}

    def _read(self) -> dict[str, object]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, "the crash worker died"
        return dict(json.loads(line))

    def run(self, corpus: Path, index: Path, *, full: bool = False,
            kill_at_op: int | None = None, kill_after: float | None = None,
            ops_file: Path | None = None) -> int:
        """Run one build; returns its exit code (-9 when it was killed)."""
        assert self.process.stdin is not None
        request = {"corpus": str(corpus), "index": str(index), "full": full,
                   "kill_at_op": kill_at_op, "ops_file": str(ops_file) if ops_file else None}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        pid = int(str(self._read()["pid"]))
        if kill_after is not None:
            time.sleep(kill_after)
            with contextlib.suppress(ProcessLookupError):  # it may have finished
                os.kill(pid, signal.SIGKILL)  # our own forked child
        return int(str(self._read()["exit"]))

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    client = Worker()
    yield client
    client.close()


def fresh_trial(fx: Fixture, name: str, scenario: str) -> tuple[Path, Path, bool]:
    trial = fx.root / name
    shutil.copytree(CORPUS, trial / "corpus")
    full = make_new_corpus(trial / "corpus", scenario)
    shutil.copytree(fx.old_index, trial / "index", ignore=shutil.ignore_patterns(LOCK_FILE))
    return trial / "corpus", trial / "index", full


def check_whole(index_dir: Path, fx: Fixture, scenario: str) -> str:
    """The index loads, answers and is exactly the old or the new version."""
    state = State.of(load_index(index_dir, expected_model_id="fake-embedder"), FakeEmbedder())
    assert state.top_hits, "the index does not answer"
    if state.same(fx.old_state):
        return "old"
    assert state.same(fx.new_states[scenario]), "the index is neither the old nor the new one"
    return "new"


def check_cleaned_by_next_build(corpus: Path, index_dir: Path, fx: Fixture,
                                scenario: str) -> None:
    report = build_index(corpus, index_dir, FakeEmbedder(), ChunkerConfig())
    assert check_whole(index_dir, fx, scenario) == "new"
    leftovers = [p.name for p in index_dir.iterdir() if p.name.startswith(TMP_PREFIX)]
    assert not leftovers, f"leftovers after the next build: {leftovers}"
    versions = sorted(p.name for p in index_dir.iterdir() if p.is_dir())
    current = (index_dir / CURRENT_FILE).read_text().strip()
    assert current == report.version and current in versions and len(versions) <= 2, versions
    assert set(versions) <= {current, fx.old_version}, f"a crashed build's folder: {versions}"
    names = {p.name for p in index_dir.iterdir()} - set(versions)
    assert names <= {CURRENT_FILE, LOCK_FILE}, names


def test_build_killed_before_each_file_operation(states: Fixture, worker: Worker) -> None:
    """Kill right before the N-th file-system operation (open for writing, fsync, mkdir,
    rename, replace, unlink, rmdir, FAISS write). The "edit" build is killed at each of its
    last 30 steps (manifest, fsyncs, rename, CURRENT switch, deleting the oldest version) and
    at a seeded sample of the earlier ones; the other builds at a seeded sample of all."""
    outcomes: dict[str, int] = {"old": 0, "new": 0}
    injected = 0
    for scenario in SCENARIOS:
        corpus, index_dir, full = fresh_trial(states, f"count-{scenario}", scenario)
        ops_file = states.root / f"ops-{scenario}"
        assert worker.run(corpus, index_dir, full=full, ops_file=ops_file) == 0
        total = int(ops_file.read_text().split()[0])
        assert total > 30
        # Writing the hidden folder is many alike steps; the switch and cleanup are the tail.
        rng = random.Random(f"ops-{scenario}")
        early = list(range(1, max(1, total - SWITCH_AND_CLEANUP_OPS)))
        late = list(range(max(1, total - SWITCH_AND_CLEANUP_OPS), total + 1))
        if scenario == "edit":
            points = sorted(rng.sample(early, min(len(early), SAMPLED_OPERATIONS))) + late
        else:
            points = sorted(rng.sample(early + late, SAMPLED_OPERATIONS))
        for n in points:
            corpus, index_dir, full = fresh_trial(states, f"op-{scenario}-{n}", scenario)
            assert worker.run(corpus, index_dir, full=full, kill_at_op=n) == -signal.SIGKILL
            injected += 1
            outcomes[check_whole(index_dir, states, scenario)] += 1
            check_cleaned_by_next_build(corpus, index_dir, states, scenario)
            shutil.rmtree(index_dir.parent)
    assert outcomes["old"] and outcomes["new"], outcomes
    assert injected == sum(outcomes.values()) >= 30 + 4 * SAMPLED_OPERATIONS
    print(f"\ncrash: {injected} builds killed before a file operation; outcomes {outcomes}")


def test_build_killed_at_random_moments(states: Fixture, worker: Worker) -> None:
    """Seeded random kill times over the whole build, from its first instruction to its end."""
    durations: dict[str, float] = {}
    timing = states.root / "timing"
    for scenario in SCENARIOS:
        corpus, index_dir, full = fresh_trial(states, f"time-{scenario}", scenario)
        assert worker.run(corpus, index_dir, full=full, ops_file=timing) == 0
        durations[scenario] = float(timing.read_text().split()[1])
    outcomes = {"old": 0, "new": 0, "killed": 0}
    for trial in range(RANDOM_TRIALS):
        rng = random.Random(trial)
        scenario = rng.choice(SCENARIOS)
        corpus, index_dir, full = fresh_trial(states, f"random-{trial}", scenario)
        # Half over the whole build, half over its end, where the switch happens.
        share = rng.uniform(0, 1.0) if trial % 2 else rng.uniform(0.75, 1.1)
        delay = share * durations[scenario]
        timing.unlink(missing_ok=True)
        code = worker.run(corpus, index_dir, full=full, kill_after=delay, ops_file=timing)
        assert code in (0, -signal.SIGKILL)
        if code == 0:  # follow the machine's pace: a busy machine makes builds slower or faster
            durations[scenario] = (durations[scenario] + float(timing.read_text().split()[1])) / 2
        outcomes["killed"] += code == -signal.SIGKILL
        outcomes[check_whole(index_dir, states, scenario)] += 1
        check_cleaned_by_next_build(corpus, index_dir, states, scenario)
        shutil.rmtree(index_dir.parent)
    assert outcomes["killed"] >= RANDOM_TRIALS // 3, outcomes
    print(f"\ncrash: {RANDOM_TRIALS} builds killed at random moments; outcomes {outcomes}")


def test_garbled_current_is_repaired_by_a_full_build(states: Fixture) -> None:
    """The fix the load error names (`collab-qa index --full`) must work on that very error."""
    corpus, index_dir, _ = fresh_trial(states, "garbled", "edit")
    (index_dir / CURRENT_FILE).write_text("../../etc\n")
    report = build_index(corpus, index_dir, FakeEmbedder(), ChunkerConfig(), full=True)
    assert report.version and check_whole(index_dir, states, "edit") == "new"


def kill_cli_build(command: Path, root: Path, env: dict[str, str], trigger: str,
                   delay: float) -> int:
    """Run `collab-qa index` on root/corpus and SIGKILL it when ``trigger`` is seen."""
    process = subprocess.Popen(
        [str(command), "index", "--corpus", str(root / "corpus"), "--index", str(root / "index")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        names = [p.name for p in (root / "index").iterdir()]
        if trigger == "tmp" and any(n.startswith(TMP_PREFIX) for n in names):
            break
        if trigger == "lock" and LOCK_FILE in names:
            time.sleep(delay)
            break
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    return process.wait(timeout=30)


@pytest.mark.slow
def test_killing_the_real_index_command(states: Fixture, tmp_path: Path,
                                        corpus_index_dir: Path, real_embedder: Embedder) -> None:
    """SIGKILL `collab-qa index` (real model) while it writes its folder, and at a random
    moment of its build (two runs side by side); each index stays whole."""
    from concurrent.futures import ThreadPoolExecutor

    command = Path(sys.executable).with_name("collab-qa")
    roots = [tmp_path / name for name in ("reference", "cli-tmp", "cli-lock")]
    for root in roots:
        shutil.copytree(CORPUS, root / "corpus")
        make_new_corpus(root / "corpus", "edit")
        shutil.copytree(corpus_index_dir, root / "index", ignore=shutil.ignore_patterns(LOCK_FILE))
    old = State.of(load_index(roots[0] / "index"), real_embedder)
    build_index(roots[0] / "corpus", roots[0] / "index", real_embedder, ChunkerConfig())
    new = State.of(load_index(roots[0] / "index"), real_embedder)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLLAB_QA_MODEL": "",
           "TOKENIZERS_PARALLELISM": "false"}
    delay = random.Random("cli").uniform(0, 0.3)
    with ThreadPoolExecutor(2) as pool:
        codes = list(pool.map(kill_cli_build, [command] * 2, roots[1:], [env] * 2,
                              ["tmp", "lock"], [0.0, delay]))
    # A run may finish before its trigger is seen on a busy machine; one must be killed.
    assert set(codes) <= {-signal.SIGKILL, 0} and -signal.SIGKILL in codes, codes
    for root in roots[1:]:
        state = State.of(load_index(root / "index", expected_model_id=real_embedder.model_id),
                         real_embedder)
        assert state.same(old) or state.same(new), f"{root.name}: a mixed or broken index"
        build_index(root / "corpus", root / "index", real_embedder, ChunkerConfig())
        assert State.of(load_index(root / "index"), real_embedder).same(new)
        assert not [p for p in (root / "index").iterdir() if p.name.startswith(TMP_PREFIX)]


def test_a_loaded_index_answers_after_its_folder_is_deleted(states: Fixture) -> None:
    """Why cleanup may delete a version a server still holds: everything is read or mapped at
    load time, and a mapped file stays readable after it is unlinked."""
    _, index_dir, _ = fresh_trial(states, "deleted-under-reader", "edit")
    index = load_index(index_dir)
    before = State.of(index, FakeEmbedder())
    shutil.rmtree(index.path)
    after = State.of(index, FakeEmbedder())
    assert after.same(before) and after.top_hits
    for mode in ("dense", "lexical", "hybrid"):
        assert search_passages(Searcher(index, FakeEmbedder()), "Charité agreement", k=3, mode=mode)


@pytest.mark.parametrize("failing", ["faiss.write_index", "os.fsync", "os.rename", "os.replace"])
def test_a_failed_write_leaves_the_old_index_and_says_why(
    states: Fixture, failing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disk full (ENOSPC) at any write step: a sentence, no leftovers, the old index live."""
    import errno

    from collab_qa.errors import UserError
    from collab_qa.store import local_build as index_module

    corpus, index_dir, _ = fresh_trial(states, f"enospc-{failing}", "edit")
    module_name, name = failing.split(".")
    module = index_module.faiss if module_name == "faiss" else index_module.os
    real = getattr(module, name)
    calls = [0]

    def full_disk(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        if calls[0] >= 2 or name in ("write_index", "rename", "replace"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, full_disk)
    with pytest.raises(UserError, match=r"No space left on device.*previous index is unchanged"):
        build_index(corpus, index_dir, FakeEmbedder(), ChunkerConfig())
    monkeypatch.undo()
    assert check_whole(index_dir, states, "edit") == "old"
    assert not [p for p in index_dir.iterdir() if p.name.startswith(TMP_PREFIX)]
    check_cleaned_by_next_build(corpus, index_dir, states, "edit")
