"""Training: ``train_model.py`` runs :func:`cxrviewer.core.training.train.main`."""

from ..errors import CxrError


class TrainingError(CxrError):
    """A training run that cannot start (bad data folder, weights unavailable, ...)."""
