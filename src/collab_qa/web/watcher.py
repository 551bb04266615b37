"""Re-index by itself when files in the corpus folder change (``collab-qa serve --watch``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from collab_qa.errors import UserError
from collab_qa.web.live_index import LiveIndex

log = logging.getLogger(__name__)

WATCH_DEBOUNCE_MS = 1600


def watch_corpus(live: LiveIndex, stop: threading.Event) -> None:
    """Rebuild the index whenever the corpus changes (debounced), until ``stop`` is set.

    Only changed files are re-embedded; the live index follows the new version at once.
    """
    import watchfiles

    settings = live.settings
    for _changes in watchfiles.watch(settings.corpus_dir, stop_event=stop,
                                     debounce=WATCH_DEBOUNCE_MS, raise_interrupt=False):
        try:
            report = live.rebuild()
        except UserError as exc:
            log.warning("Re-indexing after a corpus change failed: %s", exc)
            continue
        except Exception:  # keep watching: the next change may build fine
            log.exception("Re-indexing after a corpus change failed")
            continue
        log.info("Corpus changed: index %s (%d added, %d changed, %d removed)",
                 report.version, len(report.added), len(report.changed), len(report.removed))


@contextmanager
def corpus_watcher(live: LiveIndex) -> Iterator[None]:
    """Watch the corpus in a background thread while the block runs."""
    stop = threading.Event()
    thread = threading.Thread(target=watch_corpus, args=(live, stop), name="collab-qa-watch",
                              daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
