"""mmtune.data: the Sample record, readers, validation, mixing, instruction templates, collation.

Import from the modules: ``sample``, ``readers`` (``read_records``), ``validate``
(``validate_samples``), ``mixing`` (``mix_sources``, ``load_sources``), ``templates``
(``apply_template``), ``collate`` (``SFTCollator``, ``GenerationCollator``; imports transformers).
"""
