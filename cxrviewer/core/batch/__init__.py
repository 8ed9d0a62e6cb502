"""The batch engine: files and folders -> a stream of results, on lanes of threads, across torchrun ranks."""
