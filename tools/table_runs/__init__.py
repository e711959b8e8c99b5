"""The machinery of ``tools/run_tables.py`` (Table 1 and Table 2 at CPU scale), one concern per module:

* :mod:`.recipes`: each method's options at CPU scale (its ``options/table1`` preset, Table 2's changes), one run's
  options, name and digest, and the tables' constants (methods, the paper's scores, the budget).
* :mod:`.ladder`: the convergence criterion, the rate choice and the budget ladder, from the records alone.
* :mod:`.records`: the committed records and the identity of the test sets they were scored on.
* :mod:`.states`: a run's logs, its training states, where it resumes, and parking it between machines.
* :mod:`.runner`: training, scoring and recording the runs (BasicSR's runner in a subprocess), with progress.
* :mod:`.todo`: what the tables at converged budgets still need, with the commands.
* :mod:`.report` and :mod:`.figures`: the tables, orderings and figures written from the records.
"""
