"""Importers from public dataset layouts to the plift-ns data contract (``plift-import``).

Modules: ``panoptic_lifting`` (the official release's processed scenes), ``replica`` (Semantic-NeRF's Replica renders),
``scannet`` (ScanNet exports), ``common`` (camera conventions, class maps, resizing, scene box, atomic writing),
``safe_pickle`` (restricted reader for ``segmentation_data.pkl``) and ``cli``. In-the-wild captures need no importer:
``ns-process-data`` + ``plift-labels`` write the data contract directly.
"""
