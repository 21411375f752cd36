"""The tuner service: one `SymbolTuner` per symbol (`symbol`) under a `TunerService` (`tuner_service`),
the counters of a publishing period (`period`) and where published versions go (`publish`)."""
