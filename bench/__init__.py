"""Speed benchmarks for collab-qa: ``python -m bench [latency|indexing|scale|peers|onnx|all]``.

Each part prints a table and writes ``bench/results/<part>.json``; ``python -m bench report``
(run at the end of every invocation) turns the results into ``bench/README.md``.
"""
