"""Read-back views of a sweep (``nets-report``; the command line is ``nets.app.report``).

- ``model``: runs, configs over seeds, the ranking and its values (no store, no drawing);
- ``sweep``: which sweep, its runs and curves read from the store (``nets.store.read``);
- ``text``: the printed table and the CSV;
- ``figures``: ``report.png``, one panel pair per config; ``plots``: one run's curves;
- ``html``: ``report.html``, every run with its curves as inline SVG;
- ``files``: the three files in one folder.

Modules are imported one by one; this ``__init__`` imports nothing, so a job that only
draws its own curves (``plots``) does not pay for the rest.
"""
