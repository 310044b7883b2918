"""Importers from public dataset layouts to the plift-ns data contract (``plift-import``).

Importers: ``panoptic_lifting`` (the official release's processed scenes), ``replica`` (Semantic-NeRF's Replica
renders), ``scannet`` (ScanNet exports), each only reading its own layout. What they share: ``options`` (command-line
options, ``--classes``), ``layout`` (source folders and per-frame files), ``poses`` (camera conventions), ``images``
(reading and resampling images, depth, probabilities), ``labels`` (label images through the class map, simulated input
labels), ``scene_box``, ``writer`` (the scene written atomically, split, transforms.json, report), ``safe_pickle``
(restricted reader for ``segmentation_data.pkl``) and ``cli``. Class maps: :mod:`plift_ns.data.class_maps`; label
PNGs: :mod:`plift_ns.data.label_io`. In-the-wild captures need no importer:
``ns-process-data`` + ``plift-labels`` write the data contract directly.
"""
