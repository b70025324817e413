"""hill's examples; ``examples.tinynet`` is a user's package as hill sees one (docs/models.md)."""
