"""DICOM networking: the node behind ``cxrviewer serve``, its durable queue, the verdict SR, and the PACS client."""
