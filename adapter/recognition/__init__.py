"""检查检验结果互认: mutual recognition of exam and lab results across facilities.

catalogue.py   the catalogue of recognised items, the facilities' qualifications (室间质评)
               and the reasons for not recognising: data, loaded from recognition.yaml

Recognition reads the store and the patient index seam (adapter.identity.persons); the API
and the ``adapter recognition`` commands call it, never the other way round.
"""
