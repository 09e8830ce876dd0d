"""The mapping layer: vendor JSON ⇄ canonical fields, driven by config.yaml's ``mapping:``.

- ``spec`` — the config models (``FieldSpec``, ``SystemMapping``, ``MappingSpec``)
- ``paths`` — reading and writing vendor paths (nested, and Close's flat ``custom.cf_…`` keys)
- ``transforms`` — named unit conversions, each a pure pair
- ``mapper`` — ``Mapper``, ``RefResolver``; ``errors`` — ``MappingError``, ``UnresolvedReference``

Nothing is imported here: ``sync.config`` imports ``spec`` and ``mapper`` needs ``sync.config``.
"""
