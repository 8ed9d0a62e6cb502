"""A model at a site: evaluation on the site's labelled folder, calibration to it, and the reader-study
figures; built on the training package's metrics, reports and model card."""
