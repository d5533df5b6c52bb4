"""The referral loop (双向转诊闭环, docs/referral-loop.md): the state machine of the referral
Task (machine.py, its table in adapter/data/referral-states.yaml), applying a change
through the store and the outbox (apply.py), and the changes messages make (messages.py).
"""

from adapter.referral.machine import Change, Outcome, Refusal, request_status, transition

__all__ = ["Change", "Outcome", "Refusal", "request_status", "transition"]
