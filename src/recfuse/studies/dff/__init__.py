"""The DFF study: do a frozen model's hidden states help a sequential recommender, and how?

``features`` loads the frozen layers and captions of the study's items, ``arms`` defines the
typed arms and builds their models, ``report`` turns finished cells into the table, plot and
verdicts, ``study`` is the `Study` on the skeleton (`recfuse.runs.study`). Import
`recfuse.studies.dff.study` for `DFFStudy` and `DFFConfig`; this package file stays light so the
command line starts fast.
"""
