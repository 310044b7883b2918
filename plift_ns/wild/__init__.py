"""From photos alone: ``plift-wild`` turns a folder of photos into a plift-ns scene (COLMAP poses through
``ns-process-data images``, a scene box from the sparse points, 2D labels from ``plift-labels``)."""
