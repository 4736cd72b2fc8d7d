"""Views of the run record (harness library; no pytest): the self-contained ``report.html``
(:mod:`rehearsal.report.html`), the manifest diff it shows (:mod:`rehearsal.report.manifest`) and the
terminal's progress lines (:mod:`rehearsal.report.progress`). Each reads ``rehearsal.json`` data and
nothing else, so ``python -m rehearsal report RUN_DIR`` can render a report again from a run folder alone.
"""
