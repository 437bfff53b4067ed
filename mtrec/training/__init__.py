"""mtrec.training: a training run (fit, callbacks, checkpoints, reports) and loading it back.

Modules:
    prepare           config -> rows, splits, the fitted encoder and encoded arrays
    run               `train` (writes a run directory) and `fit_model`, its core (also the
                      correlation sweep's)
    predict           `predict_arrays`: the one prediction path (evaluation, scoring, recommend,
                      the correlation sweep)
    callbacks         metrics.json/csv per epoch, `val_main_loss`, one-task log names
    analysis_loggers  gate statistics and gradient cosines per epoch (`training.analysis`)
    gates             gate weights grouped by level with expert names, and their entropy
    evaluation        per-task test metrics with a constant baseline
    report            report.md
    trained_run       `load_run`: a finished run directory back as config, encoder and model

`mtrec.analysis` builds on this package; nothing here imports it.
"""
