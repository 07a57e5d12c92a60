"""Similar past cases: cosine nearest neighbours (scikit-learn) on the classifier's text features.

The vectors are the classifier's own text part (its vocabulary, IDF and normalisation, through
`classifiers.features.tfidf_rows`), without its knowledge features. When the classifier cannot
be loaded or its API changed, a plain scikit-learn TF-IDF (words and word pairs, fitted on the
cases present at the first lookup) is used instead and `SimilarCases.method` says so.
The index grows with new cases on each lookup; deleted or relabelled cases are dropped when read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.storage import cases as store
from bot.storage.db import Database

log = logging.getLogger(__name__)
CANDIDATES = 25  # neighbours read before dropping the case itself and dead cases


@dataclass
class Similar:
    post: Any
    classification: Any
    similarity: float


def classifier_vectorizer(classifier: Any) -> Callable[[list[str]], Any]:
    """Texts -> CSR rows of the classifier's text features (raises if its API differs)."""
    import scipy.sparse as sp

    from classifiers.features import DocFeatures, tfidf_rows

    state = classifier.state
    vocab, idf, n_text = classifier.vocab, state.idf, int(state.n_text)

    def vectorize(texts: list[str]) -> Any:
        docs = [DocFeatures(text=d.text) for d in classifier.analyze(texts)]
        indptr, indices, data = tfidf_rows(docs, vocab, idf, n_text, 0.0)
        matrix = sp.csr_matrix((data, indices, indptr), shape=(len(texts), n_text))
        matrix.sum_duplicates()
        return matrix

    vectorize(["test"])  # fail now, not at the first lookup, if the API changed
    return vectorize


class SimilarCases:
    def __init__(self, db: Database, classifier_loader: Callable[[], Any] | None = None):
        self.db = db
        self._loader = classifier_loader
        self._lock = threading.Lock()
        self._vectorize: Callable[[list[str]], Any] | None = None
        self.method = ""
        self._ids: list[int] = []
        self._blocks: list[Any] = []
        self._matrix: Any = None
        self._nn: Any = None
        self._last_id = 0

    def _setup(self, texts: list[str]) -> None:
        if self._loader is not None:
            try:
                self._vectorize = classifier_vectorizer(self._loader())
                self.method = "classifier text features"
                return
            except Exception as exc:  # noqa: BLE001 - the fallback keeps the page working
                log.warning("similar cases: classifier features unavailable (%s), TF-IDF", exc)
        from sklearn.feature_extraction.text import TfidfVectorizer

        tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=1, strip_accents="unicode")
        tfidf.fit(texts or ["doctoctoc"])
        self._vectorize = lambda batch: tfidf.transform(batch)
        self.method = "TF-IDF fallback"

    def refresh(self) -> int:
        """Add the cases stored since the last call; returns the index size."""
        import scipy.sparse as sp
        from sklearn.neighbors import NearestNeighbors

        with self._lock:
            added = False
            while True:
                with self.db.session() as session:
                    batch = store.cases_after(session, self._last_id)
                if not batch:
                    break
                if self._vectorize is None:
                    self._setup([t for _, t in batch])
                assert self._vectorize is not None
                self._blocks.append(self._vectorize([t for _, t in batch]))
                self._ids.extend(i for i, _ in batch)
                self._last_id = batch[-1][0]
                added = True
            if added:
                self._matrix = sp.vstack(self._blocks).tocsr()
                self._blocks = [self._matrix]
                self._nn = NearestNeighbors(metric="cosine", algorithm="brute").fit(self._matrix)
            return len(self._ids)

    def similar(self, post_id: int, text: str, k: int = 5) -> list[Similar]:
        """The k nearest live cases (itself excluded), answered ones first, then by similarity."""
        self.refresh()
        if self._nn is None or self._vectorize is None:
            return []
        vector = self._vectorize([text or ""])
        if vector.nnz == 0:
            return []
        n = min(CANDIDATES + 1, len(self._ids))
        distances, rows = self._nn.kneighbors(vector, n_neighbors=n)
        found = [
            (self._ids[r], 1.0 - float(d))
            for d, r in zip(distances[0], rows[0], strict=True)
            if self._ids[r] != post_id and 1.0 - float(d) > 0.0
        ]
        with self.db.session() as session:
            live = store.cases_by_ids(session, [i for i, _ in found])
        nearest = [Similar(*live[i], round(s, 3)) for i, s in found if i in live][:k]
        nearest.sort(key=lambda s: (s.post.answer_count == 0, -s.similarity))
        return nearest
