"""检查检验结果互认: mutual recognition of exam and lab results across facilities.

catalogue.py   the catalogue of recognised items, the facilities' qualifications (室间质评)
               and the reasons for not recognising: data, loaded from recognition.yaml
query.py       which stored results of a person are recognisable now, and why not
marks.py       the mark (HR ...) in meta.tag of results recognisable when stored (a pipeline
               step)
parameters.py  the answer as a FHIR Parameters (and the code system URLs)
decisions.py   a doctor's decision, checked, stored as a row and a Task
rate.py        the monthly 互认率 per facility and item

Recognition reads the store and the patient index seam (adapter.identity.persons); the API,
the ``adapter recognition`` commands and the pipeline's marking step call it, never the other
way round.
"""
