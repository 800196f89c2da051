"""Evaluation: DAVIS J/F, OPE (OTB/LaSOT/GOT-10k) and VOT measures."""
