"""Images in and out of files: reading radiographs (raster and DICOM), window/level, frame normalisation,
equalisation, and the four-corner text. Imports nothing else of the core but its errors."""
