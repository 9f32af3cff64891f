"""Training (needs the ``train`` extra: Lightning, Hydra): synthetic data (:mod:`.data`), the
LightningModule (:mod:`.system`), ``train(cfg)`` (:mod:`.train`, called by ``train.py``) and the
export of trained engines (:mod:`.export`)."""
