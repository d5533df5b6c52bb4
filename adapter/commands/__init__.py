"""The ``adapter`` commands by area; adapter/cli.py assembles them into one typer app.

common.py      settings, the one start-up path (build_runtime), ``cannot start`` errors
serve.py       adapter serve
messages.py    adapter ingest, messages, show, reprocess
demo.py        adapter demo: the consortium's story (lab, referral loop, 互认, file drops)
mappings.py    adapter mappings check, mappings test
connectors.py  adapter connectors check, listen, poll
delivery.py    adapter worker, deliveries, replay
auth.py        adapter auth keygen, hash-secret (API clients, docs/security.md)
recognition.py adapter recognition check, query, decide, rate (检查检验结果互认)
store.py       adapter store compact (compress bodies stored before migration 0017)
"""
