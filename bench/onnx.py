"""ONNX Runtime backend evaluation: the bundled MiniLM exported locally (fp32) and int8
dynamically quantised, against the product's torch embedder: first-sight question latency
(one thread), batch throughput, agreement of the vectors, and Hit@1 / MRR@10 of hybrid
search on the eval questions with an index built by each backend.

sentence-transformers' own ONNX backend needs optimum-onnx, which pins transformers < 5
(the product runs 5.x), so the export is done here with ``torch.onnx.export`` and run with
onnxruntime and the model's own tokenizer.json: the same graph the ST backend would run.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import CACHE, load_questions, relevance, show, summary_ms, table, write_result
from bench.corpus_index import bench_settings, build, fresh_corpus

MAX_TOKENS = 256


def export(folder: Path) -> tuple[Path, Path]:
    """model.onnx and model-int8.onnx in ``folder`` (made once, reused)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from collab_qa.embedding_st import bundled_model_path

    folder.mkdir(parents=True, exist_ok=True)
    fp32, int8 = folder / "model.onnx", folder / "model-int8.onnx"
    if not fp32.is_file():
        path = bundled_model_path()
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModel.from_pretrained(str(path)).eval()

        class Encoder(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, ids: Any, mask: Any, types: Any) -> Any:
                return self.model(input_ids=ids, attention_mask=mask,
                                  token_type_ids=types).last_hidden_state

        sample = tokenizer(["a question", "a longer passage of text"], padding=True,
                           return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        torch.onnx.export(Encoder(), (sample["input_ids"], sample["attention_mask"],
                                      sample["token_type_ids"]), str(fp32),
                          input_names=names, output_names=["hidden"],
                          dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "hidden"]},
                          opset_version=17, dynamo=False)
    if not int8.is_file():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    return fp32, int8


class OnnxEmbedder:
    """The Embedder protocol over an ONNX file: tokenizer.json, mean pooling, L2 norm."""

    def __init__(self, onnx_file: Path, threads: int = 1, batch_size: int = 32) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        from collab_qa.embedding_st import bundled_model_path

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(onnx_file), options,
                                                     providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(bundled_model_path() / "tokenizer.json"))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding()
        self._batch_size = batch_size
        digest = hashlib.sha256(onnx_file.name.encode()).hexdigest()[:8]
        self.model_id = f"onnx-{onnx_file.stem}@{digest}"
        self.dimension = 384
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for low in range(0, len(texts), self._batch_size):
            ids = order[low : low + self._batch_size]
            encodings = self._tokenizer.encode_batch([texts[i] for i in ids])
            input_ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            hidden = self._session.run(None, {"input_ids": input_ids, "attention_mask": mask,
                                              "token_type_ids": np.zeros_like(input_ids)})[0]
            summed = (hidden * mask[:, :, None]).sum(axis=1)
            pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
            out[ids] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return out

    def encode_query(self, text: str) -> np.ndarray:
        vector = self._cache.get(text)
        if vector is None:
            vector = self._cache[text] = self.encode([text])[0]
        return vector

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


def _speed(embedders: dict[str, Any], queries: list[str], passages: list[str],
           rounds: int = 3) -> dict[str, dict[str, Any]]:
    """Interleaved, so that load from other processes falls on every backend alike."""
    first: dict[str, list[float]] = {name: [] for name in embedders}
    batch: dict[str, list[float]] = {name: [] for name in embedders}
    for _ in range(rounds):
        for query in queries:  # first sight: one question at a time, nothing cached
            for name, embedder in embedders.items():
                started = time.perf_counter()
                embedder.encode([query])
                first[name].append((time.perf_counter() - started) * 1000)
        for name, embedder in embedders.items():
            started = time.perf_counter()
            embedder.encode(passages)
            batch[name].append(time.perf_counter() - started)
    return {name: {"question_encode_ms": summary_ms(first[name]),
                   "batch_passages_per_s": round(len(passages) / min(batch[name]), 1)}
            for name in embedders}


def _evaluate(name: str, embedder: Any, questions: list[Any],
              passages: list[str]) -> dict[str, Any]:
    from collab_qa.answer import search_passages
    from collab_qa.search import open_searcher

    vectors = embedder.encode(passages)
    settings = bench_settings(f"onnx-{name}")
    fresh_corpus(settings)
    build(settings, embedder, full=True)
    searcher = open_searcher(settings, embedder)
    hit1: list[float] = []
    mrr: list[float] = []
    for question in questions:
        if question.answers:
            hits = search_passages(searcher, question.question, k=10, history=question.history)
            h, m = relevance(question, [(x.doc_id, x.text) for x in hits], 10)
            hit1.append(h)
            mrr.append(m)
    return {"hit_at_1": round(sum(hit1) / len(hit1), 4),
            "mrr_at_10": round(sum(mrr) / len(mrr), 4), "vectors": vectors}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from collab_qa.chunking import embedding_text
    from collab_qa.embedding import load_embedder
    from collab_qa.index import load_index
    from collab_qa.query import compose_query

    questions, source = load_questions()
    queries = [compose_query(q.question, q.history) for q in questions]
    fp32, int8 = export(CACHE / "onnx")
    torch_embedder = load_embedder("")
    settings = bench_settings("onnx-torch")
    fresh_corpus(settings)
    build(settings, torch_embedder, full=True)
    index = load_index(settings.index_dir)
    passages = [embedding_text(index.title_of(c.doc_id), c) for c in index.chunks]
    embedders = {"torch": torch_embedder, "onnx-fp32": OnnxEmbedder(fp32, threads=1),
                 "onnx-int8": OnnxEmbedder(int8, threads=1)}
    backends = _speed(embedders, queries, passages, 1 if args.tiny else 3)
    for name, embedder in embedders.items():
        backends[name].update(_evaluate(name, embedder, questions, passages))
    reference = backends["torch"]["vectors"]
    for stats in backends.values():
        vectors = stats.pop("vectors")
        stats["mean_cosine_to_torch"] = round(float(np.mean(np.sum(vectors * reference,
                                                                   axis=1))), 5)
    result = {"questions": source, "passages": len(passages), "backends": backends,
              "onnx_mb": {"fp32": round(fp32.stat().st_size / 2**20, 1),
                          "int8": round(int8.stat().st_size / 2**20, 1)}}
    write_result("onnx", result)
    show(render(result))
    return result


def render(result: dict[str, Any]) -> str:
    rows = [[name, s["question_encode_ms"]["p50"], s["question_encode_ms"]["p95"],
             s["batch_passages_per_s"], s["mean_cosine_to_torch"], s["hit_at_1"],
             s["mrr_at_10"]] for name, s in result["backends"].items()]
    return table(f"Embedding backends ({result['passages']} corpus passages, questions from "
                 f"{result['questions']})",
                 ["backend", "question p50 ms", "question p95 ms", "batch passages/s",
                  "cosine to torch", "Hit@1 (hybrid)", "MRR@10"], rows)
